"""OpenStreetView-5M (Astruc et al., 2024), the large-scale experiment of section 4 (Table 2, Appendix C).

Like Dufour et al. (2024), whose setup the paper follows, the head is trained on *cached* image
embeddings: the StreetCLIP CLS token (1024 floats per image). Two layouts of those are read:

- ``wds``: the osv5m-wds webdataset layout, ``train/ val/ test/`` folders of ``.tar`` shards (and
  ``sizes.json``); each sample is ``<key>.json`` (``latitude``, ``longitude``, ``unique_*``, ...) and
  ``<key>.street_clip.npy`` (the embedding); ``<key>.jpg`` may be there and is skipped.
- ``csv``: ``train.csv`` and ``test.csv`` of OSV5M (columns ``id, latitude, longitude, ...,
  unique_country, unique_region, unique_sub-region, unique_city, ...``) with one ``<id>.npy`` per
  image under ``embeddings/<split>/`` (or ``embeddings/``) of the same folder, or the folder
  ``datasets.osv5m.embeddings`` names.

``prepare`` converts either into a memory-mappable cache, streaming (at most ``chunk`` rows in RAM):
per split ``<split>_embeddings.npy`` (float16 [n, 1024]), ``<split>_targets.npy`` (float64 [n, 2],
latitude and longitude in degrees) and ``<split>_meta.csv`` (id and the ``unique_*`` labels), plus
``val_rows.npy``/``train_rows.npy`` (rows of the training files that form the validation and
training splits) and ``summary.json`` (Table 1's column).
"""

from __future__ import annotations

import json
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from ..errors import DataSourceError
from .base import RawData, Source

EMBEDDING_SUFFIX = ".street_clip.npy"
LABEL_COLUMNS = ["unique_country", "unique_region", "unique_sub-region", "unique_city"]
SPLITS = ("train", "val", "test")


# ----------------------------------------------------------------------------------------- layouts
def detect_layout(root: Path | str) -> str:
    """``wds`` (a ``train/`` folder of .tar shards) or ``csv`` (``train.csv``); else an error naming the folder."""
    root = Path(root)
    if not root.is_dir():
        raise DataSourceError(f"osv5m: {root} is not a folder (config key 'osv5m_dir' or 'datasets.osv5m.path')")
    if (root / "train").is_dir() and any((root / "train").glob("*.tar")):
        return "wds"
    if (root / "train.csv").is_file():
        return "csv"
    raise DataSourceError(f"osv5m: {root} holds neither osv5m-wds shards (train/*.tar) nor train.csv")


def shards(root: Path, split: str) -> list[Path]:
    return sorted((Path(root) / split).glob("*.tar"))


def input_files(root: Path | str) -> list[Path]:
    """The files the prepare step depends on: the shards, or the two CSV files."""
    root = Path(root)
    layout = detect_layout(root)
    if layout == "wds":
        return [p for split in SPLITS for p in shards(root, split)]
    return [root / "train.csv", root / "test.csv"]


class Chunk:
    """Rows of one split: ids, [n, 2] latitude/longitude in degrees, [n, d] embeddings, labels."""

    def __init__(self, ids, coords, embeddings, labels):
        self.ids, self.coords, self.embeddings, self.labels = ids, coords, embeddings, labels


def _check_coords(lat, lon, where: str) -> tuple[float, float]:
    try:
        lat, lon = float(lat), float(lon)
    except (TypeError, ValueError):
        raise DataSourceError(f"osv5m: {where}: latitude/longitude are not numbers ({lat!r}, {lon!r})") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise DataSourceError(f"osv5m: {where}: latitude {lat} / longitude {lon} out of range")
    return lat, lon


def iter_wds(root: Path | str, split: str, chunk: int = 8192) -> Iterator[Chunk]:
    """Stream one split of the osv5m-wds layout shard by shard. A truncated or corrupted shard, a
    sample without coordinates or without its embedding fails with a message naming the shard."""
    for shard in shards(Path(root), split):
        buffer: dict[str, dict] = {}
        rows = []
        try:
            with tarfile.open(shard, mode="r|") as tar:
                for member in tar:
                    if not member.isfile():
                        continue
                    name = member.name.rsplit("/", 1)[-1]
                    if name.endswith(".json"):
                        key, part = name[: -len(".json")], "json"
                    elif name.endswith(EMBEDDING_SUFFIX):
                        key, part = name[: -len(EMBEDDING_SUFFIX)], "npy"
                    else:
                        continue  # the image, or other extras
                    data = tar.extractfile(member).read()
                    sample = buffer.setdefault(key, {})
                    sample[part] = data
                    if "json" in sample and "npy" in sample:
                        rows.append(_wds_row(shard, key, buffer.pop(key)))
                        if len(rows) >= chunk:
                            yield _chunk(rows)
                            rows = []
        except (tarfile.TarError, EOFError, OSError, ValueError) as e:
            if isinstance(e, DataSourceError):
                raise
            raise DataSourceError(f"osv5m: shard {shard} is truncated or corrupted ({type(e).__name__}: {e})") from None
        if buffer:
            key, sample = next(iter(buffer.items()))
            missing = "embedding (.street_clip.npy)" if "npy" not in sample else "metadata (.json)"
            raise DataSourceError(f"osv5m: shard {shard}: sample {key!r} has no {missing}")
        if rows:
            yield _chunk(rows)


def _wds_row(shard: Path, key: str, sample: dict):
    where = f"shard {shard}, sample {key!r}"
    try:
        meta = json.loads(sample["json"])
    except ValueError:
        raise DataSourceError(f"osv5m: {where}: unreadable .json") from None
    if "latitude" not in meta or "longitude" not in meta:
        raise DataSourceError(f"osv5m: {where}: no latitude/longitude in its .json (keys: {', '.join(sorted(meta))})")
    lat, lon = _check_coords(meta["latitude"], meta["longitude"], where)
    try:
        emb = _npy_vector(sample["npy"])
    except ValueError as e:
        raise DataSourceError(f"osv5m: {where}: unreadable embedding ({e})") from None
    ident = str(meta.get("id", key))
    return ident, (lat, lon), emb, {c: str(meta.get(c, "")) for c in LABEL_COLUMNS}


_NPY_HEADERS: dict[bytes, tuple[np.dtype, int]] = {}


def _npy_vector(data: bytes) -> np.ndarray:
    """A flat array from .npy bytes; the header is parsed once per distinct header (all samples share
    one), which makes reading shards several times faster than np.load per sample."""
    if data[:6] != b"\x93NUMPY" or data[6] not in (1, 2, 3):
        raise ValueError("not an .npy file")
    size = 2 if data[6] == 1 else 4
    header_len = int.from_bytes(data[8 : 8 + size], "little")
    offset = 8 + size + header_len
    header = data[8 + size : offset]
    if header not in _NPY_HEADERS:
        import ast

        d = ast.literal_eval(header.decode("latin1"))
        if d.get("fortran_order") or not isinstance(d.get("shape"), tuple):
            raise ValueError(f"unsupported .npy header {d}")
        dtype = np.dtype(d["descr"])
        if dtype.hasobject:
            raise ValueError("object arrays are not embeddings")
        _NPY_HEADERS[header] = (dtype, int(np.prod(d["shape"])))
    dtype, count = _NPY_HEADERS[header]
    if len(data) - offset != count * dtype.itemsize:
        raise ValueError(f"{len(data) - offset} bytes of data where the header announces {count} x {dtype}")
    return np.frombuffer(data, dtype=dtype, count=count, offset=offset)


def _chunk(rows) -> Chunk:
    dims = {len(r[2]) for r in rows}
    if len(dims) != 1:
        raise DataSourceError(f"osv5m: embeddings of different sizes {sorted(dims)}")
    return Chunk(
        [r[0] for r in rows],
        np.array([r[1] for r in rows], dtype=np.float64),
        np.stack([r[2] for r in rows]),
        {c: [r[3][c] for r in rows] for c in LABEL_COLUMNS},
    )


def iter_csv(root: Path | str, split: str, embeddings: Path | str | None = None, chunk: int = 8192) -> Iterator[Chunk]:
    """Stream ``<split>.csv`` in chunks with each row's ``<id>.npy``."""
    import pandas as pd

    root = Path(root)
    table = root / f"{split}.csv"
    emb_root = Path(embeddings) if embeddings else root / "embeddings"
    folders = [emb_root / split, emb_root]
    for frame in pd.read_csv(table, chunksize=chunk, dtype={"id": str}, keep_default_na=False):
        missing = [c for c in ("id", "latitude", "longitude") if c not in frame.columns]
        if missing:
            raise DataSourceError(f"osv5m: {table} has no column(s) {', '.join(missing)}")
        coords = []
        embs = []
        for ident, lat, lon in zip(frame["id"], frame["latitude"], frame["longitude"]):
            coords.append(
                _check_coords(lat if lat != "" else None, lon if lon != "" else None, f"{table} row id {ident!r}")
            )
            path = next((f / f"{ident}.npy" for f in folders if (f / f"{ident}.npy").is_file()), None)
            if path is None:
                raise DataSourceError(
                    f"osv5m: no embedding {ident}.npy for {table} row id {ident!r} (looked in {', '.join(map(str, folders))})"
                )
            try:
                embs.append(np.load(path, allow_pickle=False).reshape(-1))
            except (ValueError, OSError) as e:
                raise DataSourceError(f"osv5m: unreadable embedding {path} ({e})") from None
        labels = {c: [str(v) for v in frame[c]] if c in frame.columns else [""] * len(frame) for c in LABEL_COLUMNS}
        yield _chunk(
            [
                (ident, coords[i], embs[i], {c: labels[c][i] for c in LABEL_COLUMNS})
                for i, ident in enumerate(frame["id"])
            ]
        )


# ------------------------------------------------------------------------------ the .npy cache
class _GrowingNpy:
    """An .npy file written row block by row block; its header (padded to a fixed size) gets the row count at close."""

    HEADER = 128  # bytes: magic, version, header length and the padded dict

    def __init__(self, path: Path, dtype, width: int):
        self.path, self.dtype, self.width, self.rows = path, np.dtype(dtype), width, 0
        self.file = open(path, "wb")
        self.file.write(self._header(0))

    def _header(self, rows: int) -> bytes:
        d = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": (rows, self.width)}
        text = repr(d).encode("latin1")
        body = 128 - 10
        return b"\x93NUMPY\x01\x00" + np.uint16(body).tobytes() + text + b" " * (body - len(text) - 1) + b"\n"

    def append(self, block: np.ndarray) -> None:
        if block.shape[1] != self.width:
            raise DataSourceError(f"osv5m: embedding size {block.shape[1]} differs from the first rows' {self.width}")
        self.file.write(np.ascontiguousarray(block, dtype=self.dtype).tobytes())
        self.rows += len(block)

    def close(self) -> None:
        self.file.seek(0)
        self.file.write(self._header(self.rows))
        self.file.close()


def prepare(
    root: Path | str,
    out_dir: Path | str,
    *,
    embeddings: Path | str | None = None,
    validation="test_size",
    validation_seed: int = 0,
    chunk: int = 8192,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Convert the data under ``root`` into the cache in ``out_dir``; returns the summary (also summary.json).

    ``validation``: ``"test_size"`` (ours, default: a seeded hold-out of the test set's size from the
    training rows, as Table 1's 210k validation points suggest), a fraction of the training rows
    (float in (0, 1)), or ``"folder"`` (the osv5m-wds ``val/`` shards).
    """
    from ...io import atomic_path, atomic_write_json

    root, out_dir = Path(root), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    layout = detect_layout(root)
    log = log or (lambda message: None)
    splits = ["train", "test"] + (["val"] if validation == "folder" else [])
    if validation == "folder" and (layout != "wds" or not shards(root, "val")):
        raise DataSourceError(f"osv5m: validation 'folder' needs osv5m-wds shards in {root / 'val'}")
    summary = {"layout": layout, "root": str(root), "splits": {}}
    for split in splits:
        start = time.perf_counter()
        source = iter_wds(root, split, chunk) if layout == "wds" else iter_csv(root, split, embeddings, chunk)
        emb_path, target_path, meta_path = (
            out_dir / f"{split}_{n}" for n in ("embeddings.npy", "targets.npy", "meta.csv")
        )
        with (
            atomic_path(emb_path) as emb_tmp,
            atomic_path(target_path) as target_tmp,
            atomic_path(meta_path) as meta_tmp,
        ):
            emb_file = target_file = None
            with open(meta_tmp, "w") as meta:
                meta.write(",".join(["id"] + LABEL_COLUMNS) + "\n")
                for block in source:
                    if emb_file is None:
                        emb_file = _GrowingNpy(emb_tmp, np.float16, block.embeddings.shape[1])
                        target_file = _GrowingNpy(target_tmp, np.float64, 2)
                    emb_file.append(block.embeddings)
                    target_file.append(block.coords)
                    for i, ident in enumerate(block.ids):
                        meta.write(
                            ",".join(_csv_field(v) for v in [ident] + [block.labels[c][i] for c in LABEL_COLUMNS])
                            + "\n"
                        )
                    seconds = time.perf_counter() - start
                    log(f"prepare {split}: {emb_file.rows:,} rows, {emb_file.rows / max(seconds, 1e-9):,.0f} rows/s")
            if emb_file is None:
                raise DataSourceError(f"osv5m: split {split!r} of {root} has no samples")
            emb_file.close()
            target_file.close()
        seconds = time.perf_counter() - start
        summary["splits"][split] = {
            "rows": emb_file.rows,
            "seconds": round(seconds, 3),
            "rows_per_second": round(emb_file.rows / max(seconds, 1e-9), 1),
        }
        summary["features"] = emb_file.width
    n_train, n_test = summary["splits"]["train"]["rows"], summary["splits"]["test"]["rows"]
    rows = np.random.default_rng(validation_seed).permutation(n_train)
    if validation == "folder":
        n_val = 0
    elif validation == "test_size":
        n_val = min(n_test, n_train // 2)
    else:
        fraction = float(validation)
        if not 0 < fraction < 1:
            raise DataSourceError(
                f"osv5m: validation {validation!r} is neither 'test_size', 'folder' nor a fraction in (0, 1)"
            )
        n_val = int(round(fraction * n_train))
    for name, part in (("train_rows.npy", rows[n_val:]), ("val_rows.npy", rows[:n_val])):
        with atomic_path(out_dir / name) as tmp, open(tmp, "wb") as f:
            np.save(f, np.sort(part))
    summary["validation"] = {"mode": validation, "seed": validation_seed}
    summary["table1"] = {
        "#num. features": summary["features"],
        "#num. train points": n_train - n_val,
        "#num. val points": n_val if validation != "folder" else summary["splits"]["val"]["rows"],
        "#num. test points": n_test,
    }
    atomic_write_json(out_dir / "summary.json", summary)
    t = summary["table1"]
    log("Table 1 (OSV5M): " + ", ".join(f"{k} {v:,}" for k, v in t.items()))
    return summary


def _csv_field(value: str) -> str:
    value = str(value)
    return '"' + value.replace('"', '""') + '"' if any(c in value for c in ',"\n') else value


CACHE_FILES = ["summary.json", "train_rows.npy", "val_rows.npy"] + [
    f"{split}_{name}" for split in ("train", "test") for name in ("embeddings.npy", "targets.npy", "meta.csv")
]


# ------------------------------------------------------------------------------ reading the cache
class Cache:
    """The prepared cache, memory-mapped: ``embeddings(split)``, ``coordinates(split)`` (degrees)."""

    def __init__(self, folder: Path | str):
        self.folder = Path(folder)
        self.summary = json.loads((self.folder / "summary.json").read_text())

    def _file_split(self, split: str) -> tuple[str, np.ndarray | None]:
        if split == "test" or (split == "val" and self.summary["validation"]["mode"] == "folder"):
            return split, None
        return "train", np.load(self.folder / f"{split}_rows.npy")

    def embeddings(self, split: str) -> np.ndarray:
        name, rows = self._file_split(split)
        data = np.load(self.folder / f"{name}_embeddings.npy", mmap_mode="r")
        return data if rows is None else _take_rows(data, rows)

    def coordinates(self, split: str) -> np.ndarray:
        name, rows = self._file_split(split)
        data = np.load(self.folder / f"{name}_targets.npy")
        return data if rows is None else data[rows]


def _take_rows(data: np.ndarray, rows: np.ndarray, block: int = 65536) -> np.ndarray:
    """``data[rows]`` for sorted rows, read block by block from the memory map."""
    out = np.empty((len(rows), data.shape[1]), dtype=data.dtype)
    for i in range(0, len(rows), block):
        out[i : i + block] = data[rows[i : i + block]]
    return out


# ------------------------------------------------------------------------------ target scaling
def scale_targets(coords: np.ndarray, mode: str = "fixed", train_coords: np.ndarray | None = None) -> np.ndarray:
    """Latitude and longitude to [0, 1] (section 4: "all labels are scaled to [0, 1]").

    ``fixed`` (ours, default): ((lat + 90) / 180, (lon + 180) / 360), the same map for every split
    and run; ``minmax``: the training set's min-max scaling, as for the tabular datasets.
    """
    lo, span = target_range(mode, train_coords)
    return (np.asarray(coords, dtype=np.float64) - lo) / span


def unscale_targets(scaled, mode: str = "fixed", train_coords: np.ndarray | None = None) -> np.ndarray:
    lo, span = target_range(mode, train_coords)
    return np.asarray(scaled, dtype=np.float64) * span + lo


def target_range(mode: str, train_coords: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    if mode == "fixed":
        return np.array([-90.0, -180.0]), np.array([180.0, 360.0])
    if mode == "minmax":
        if train_coords is None:
            raise ValueError("min-max target scaling needs the training coordinates")
        lo, hi = train_coords.min(0), train_coords.max(0)
        return lo, np.where(hi > lo, hi - lo, 1.0)
    raise ValueError(f"unknown target scaling {mode!r} (config key 'osv5m.target_scaling': 'fixed' or 'minmax')")


def _load(key: str, spec: dict, cache_dir: Path) -> RawData:
    raise DataSourceError(
        f"dataset {key!r}: the osv5m source is prepared by its own stage (workflow/rules/osv5m.smk, "
        f"rule osv5m_prepare), not by the tabular prepare rule"
    )


SOURCE = Source(name="osv5m", load=_load)
