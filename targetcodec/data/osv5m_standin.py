"""A tiny stand-in for OpenStreetView-5M, in both layouts the ``osv5m`` source reads (tests, demos).

Points lie on the sphere with latitudes in [-55, 72] (roughly where OSV5M's images are); each point's
"embedding" is a fixed random projection of smooth features of its position on the sphere, plus
noise, so that the geolocation task is learnable. Both layouts hold the same samples in the same
order, so they prepare to the same cache::

    python -m targetcodec.data.osv5m_standin OUT --layout wds --train 3000 --test 500 --dim 32
"""

from __future__ import annotations

import argparse
import io
import json
import tarfile
from pathlib import Path

import numpy as np

LAT_RANGE = (-55.0, 72.0)


def standin_samples(n: int, dim: int, seed: int, noise: float = 0.1, start_id: int = 0):
    """ids, [n, 2] (lat, lon) degrees, [n, dim] float32 embeddings; the projection is fixed (seed 12345)."""
    rng = np.random.default_rng(seed)
    lat = rng.uniform(*LAT_RANGE, n)
    lon = rng.uniform(-180.0, 180.0, n)
    la, lo = np.radians(lat), np.radians(lon)
    feats = [np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)]
    for f in (2, 3, 4):
        feats += [np.sin(f * la), np.cos(f * la), np.cos(la) * np.sin(f * lo), np.cos(la) * np.cos(f * lo)]
    features = np.stack(feats, 1)
    projection = np.random.default_rng(12345).normal(size=(features.shape[1], dim)) / np.sqrt(features.shape[1])
    emb = features @ projection + noise * rng.normal(size=(n, dim))
    ids = [str(100000 + start_id + i) for i in range(n)]
    return ids, np.stack([lat, lon], 1), emb.astype(np.float32)


def _labels(lat, lon) -> dict:
    country = f"C{int((lon + 180) // 30)}_{int((lat + 90) // 30)}"
    return {
        "country": country,
        "region": f"{country}R{int(lon % 10 // 5)}",
        "sub-region": "",
        "city": f"city{int(lat) % 7}",
        "unique_country": country,
        "unique_region": f"{country}R{int(lon % 10 // 5)}",
        "unique_sub-region": f"{country}S",
        "unique_city": f"{country}city{int(lat) % 7}",
    }


def npy_bytes(array) -> bytes:
    """The bytes of ``array`` saved as .npy (as a shard holds an embedding)."""
    buf = io.BytesIO()
    np.save(buf, np.asarray(array))
    return buf.getvalue()


def write_shard(path: Path | str, samples) -> Path:
    """A webdataset tar shard: ``samples`` is a list of ``(key, {suffix: bytes})``, each part written
    as the member ``<key><suffix>`` (e.g. ``.json``, ``.street_clip.npy``), in order."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        for key, parts in samples:
            for suffix, data in parts.items():
                info = tarfile.TarInfo(f"{key}{suffix}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


def read_shard(path: Path | str) -> list:
    """The samples of a shard as ``write_shard`` takes them (tests change them and write them back)."""
    samples: dict[str, dict[str, bytes]] = {}
    with tarfile.open(path, "r") as tar:
        for member in tar:
            key, dot, rest = member.name.partition(".")
            samples.setdefault(key, {})[dot + rest] = tar.extractfile(member).read()
    return list(samples.items())


def write_standin(
    out: Path | str,
    layout: str,
    train: int = 3000,
    test: int = 500,
    val: int = 200,
    dim: int = 32,
    shard_size: int = 1000,
    seed: int = 0,
) -> Path:
    """Write the stand-in in ``layout`` ``wds`` (osv5m-wds) or ``csv`` (train.csv/test.csv + embeddings/)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    splits = {"train": standin_samples(train, dim, seed), "test": standin_samples(test, dim, seed + 1, start_id=train)}
    if layout == "wds":
        splits["val"] = standin_samples(val, dim, seed + 2, start_id=train + test)
        sizes = {}
        for split, (ids, coords, emb) in splits.items():
            (out / split).mkdir(exist_ok=True)
            for s, first in enumerate(range(0, len(ids), shard_size)):
                name = f"{split}/{s:06d}.tar"
                samples = []
                for i in range(first, min(first + shard_size, len(ids))):
                    meta = {
                        "id": ids[i],
                        "latitude": float(coords[i, 0]),
                        "longitude": float(coords[i, 1]),
                        **_labels(*coords[i]),
                    }
                    samples.append(
                        (ids[i], {".json": json.dumps(meta).encode(), ".street_clip.npy": npy_bytes(emb[i])})
                    )
                write_shard(out / name, samples)
                sizes[name] = min(first + shard_size, len(ids)) - first
        (out / "sizes.json").write_text(json.dumps(sizes, indent=1))
    elif layout == "csv":
        import pandas as pd

        for split, (ids, coords, emb) in splits.items():
            rows = [
                {"id": ids[i], "latitude": coords[i, 0], "longitude": coords[i, 1], **_labels(*coords[i])}
                for i in range(len(ids))
            ]
            pd.DataFrame(rows).to_csv(out / f"{split}.csv", index=False, float_format="%.17g")
            folder = out / "embeddings" / split
            folder.mkdir(parents=True, exist_ok=True)
            for i, ident in enumerate(ids):
                np.save(folder / f"{ident}.npy", emb[i])
    else:
        raise ValueError(f"unknown layout {layout!r} (expected 'wds' or 'csv')")
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--layout", choices=["wds", "csv"], default="wds")
    parser.add_argument("--train", type=int, default=3000)
    parser.add_argument("--test", type=int, default=500)
    parser.add_argument("--val", type=int, default=200)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    a = parser.parse_args(argv)
    write_standin(a.out, a.layout, a.train, a.test, a.val, a.dim, seed=a.seed)


if __name__ == "__main__":
    main()
