"""StreetCLIP embeddings of OpenStreetView-5M images, for users who have the images but no embeddings.

The paper (Appendix C) and Dufour et al. (2024) train the head on cached image embeddings: the CLS
token of StreetCLIP (Haas et al., 2023; a CLIP ViT-L/14 at 336 px), ``last_hidden_state[:, 0]`` of
``transformers.CLIPVisionModel``, 1024 floats, before the post-layernorm and without projection.

OSV5M ships its images as ``images/<split>/NN.zip`` of ``<id>.jpg``. ``embed_split`` writes one
``<id>.npy`` (float32) per image into ``<out>/<split>/`` (the layout the ``osv5m`` source reads with
``train.csv``/``test.csv``), shard by shard: a finished zip leaves a marker ``<out>/<split>/.done/NN``,
so a killed job resumes at the first unfinished shard. An image that cannot be read (a damaged
member of the zip, a file that is no image) is skipped, named in the log and in the marker; it then
has no embedding, which the preparation counts as a bad sample (``embedding_missing``). The model and its image processor come from
a local folder or the Hugging Face cache only (``local_files_only``): nothing is downloaded here.
Needs the ``embed`` extra (``pip install -e '.[embed]'``: transformers).
"""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np


def _unreadable_image_errors() -> tuple[type[BaseException], ...]:
    """What reading one image of a zip raises when the image or its member is damaged: a bad CRC or
    deflate stream (zipfile, zlib), no image format PIL knows or a truncated image (OSError), an
    image beyond PIL's size limit."""
    import zlib

    from PIL import Image

    return (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, Image.DecompressionBombError)


def load_model(model: str, device: str = "cpu"):
    """``CLIPVisionModel`` and ``CLIPImageProcessor`` from a local folder or the hub cache (never downloaded)."""
    try:
        from transformers import CLIPImageProcessor, CLIPVisionModel
    except ImportError:
        raise RuntimeError("the embed rule needs transformers: pip install -e '.[embed]'") from None
    try:
        net = CLIPVisionModel.from_pretrained(model, local_files_only=True)
        processor = CLIPImageProcessor.from_pretrained(model, local_files_only=True)
    except OSError as e:
        raise RuntimeError(
            f"StreetCLIP model {model!r} (config key 'osv5m.embed.model') is neither a local folder nor in the "
            f"Hugging Face cache; download it once where the network is reachable "
            f"(huggingface-cli download geolocal/StreetCLIP): {e}"
        ) from None
    return net.eval().to(device), processor


def cls_embeddings(net, processor, images, device: str = "cpu") -> np.ndarray:
    """[n, hidden] CLS tokens (``last_hidden_state[:, 0]``) of PIL images, float32."""
    import torch

    inputs = processor(images=images, return_tensors="pt")
    with torch.no_grad():
        out = net(pixel_values=inputs["pixel_values"].to(device))
    return out.last_hidden_state[:, 0].float().cpu().numpy()


def embed_split(
    images_dir: Path | str,
    split: str,
    out_dir: Path | str,
    model: str,
    batch_size: int = 256,
    device: str = "auto",
    log: Callable[[str], None] | None = None,
    loaded=None,
) -> int:
    """Embed every ``images/<split>/*.zip``; returns the number of images embedded in this call."""
    import torch
    from PIL import Image

    from ..io import atomic_path, atomic_write_text

    log = log or (lambda message: None)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    zips = sorted((Path(images_dir) / split).glob("*.zip"))
    if not zips:
        raise FileNotFoundError(f"no image shards {Path(images_dir) / split}/*.zip")
    out = Path(out_dir) / split
    done_dir = out / ".done"
    done_dir.mkdir(parents=True, exist_ok=True)
    net, processor = loaded or load_model(model, device)
    unreadable_image = _unreadable_image_errors()
    count, start = 0, time.perf_counter()
    for shard in zips:
        marker = done_dir / shard.stem
        if marker.exists():
            log(f"{split}/{shard.name}: done before, skipped")
            continue
        try:
            archive = zipfile.ZipFile(shard)
        except zipfile.BadZipFile as e:
            raise RuntimeError(f"image shard {shard} is not a readable zip ({e})") from None
        with archive:
            names = sorted(n for n in archive.namelist() if n.lower().endswith(".jpg"))
            skipped = []
            for i in range(0, len(names), batch_size):
                batch, images = [], []
                for name in names[i : i + batch_size]:
                    try:
                        images.append(Image.open(io.BytesIO(archive.read(name))).convert("RGB"))
                        batch.append(name)
                    except unreadable_image as e:
                        skipped.append(name)
                        log(f"{split}/{shard.name}: skipped {name}: unreadable image ({type(e).__name__}: {e})")
                if not images:
                    continue
                emb = cls_embeddings(net, processor, images, device)
                for name, e in zip(batch, emb):
                    with atomic_path(out / f"{Path(name).stem}.npy") as tmp, open(tmp, "wb") as f:
                        np.save(f, e.astype(np.float32))
                count += len(batch)
        atomic_write_text(marker, f"{len(names) - len(skipped)}\n" + "".join(f"unreadable {n}\n" for n in skipped))
        log(
            f"{split}/{shard.name}: {len(names) - len(skipped):,} images"
            + (f" ({len(skipped):,} unreadable, skipped)" if skipped else "")
            + f", {count / max(time.perf_counter() - start, 1e-9):.1f} images/s"
        )
    return count
