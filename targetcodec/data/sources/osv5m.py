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
training splits) and ``summary.json`` (Table 1's column, the validation rows' source, the bad samples).

One bad sample does not stop a preparation of millions: a sample with missing, non-finite or
out-of-range coordinates (skipped, not wrapped into range), a missing, unreadable, wrong-sized,
non-finite or beyond-float16 embedding, a damaged member of a shard, or one of the samples a shard
holds fewer than its ``sizes.json`` says, is skipped and counted per reason (``BAD_REASONS``) and
shard in the summary and the log. More than ``max_bad_fraction`` of a split's samples bad stops the
preparation with a message naming the shard. Repeated ids in the csv layout (two rows, one
``<id>.npy``) are refused, naming the id.
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


# ------------------------------------------------------------------------------ bad samples
FLOAT16_MAX = float(np.finfo(np.float16).max)  # 65504: the cache is float16, larger values become inf

BAD_REASONS = {
    "coordinates_missing": "no latitude/longitude",
    "coordinates_invalid": "latitude/longitude not finite numbers",
    "coordinates_out_of_range": "latitude outside [-90, 90] or longitude outside [-180, 180]",
    "metadata_missing": "an embedding without its .json",
    "metadata_unreadable": "a .json that is not a JSON object",
    "embedding_missing": "no embedding",
    "embedding_unreadable": "an embedding that is not a readable .npy",
    "embedding_wrong_size": "an embedding of another size than the first sample's",
    "embedding_not_finite": "an embedding holding NaN or infinity",
    "embedding_beyond_float16": f"an embedding value beyond float16's range (|x| > {FLOAT16_MAX:g})",
    "member_unreadable": "a shard member whose bytes cannot be read (truncated or damaged shard)",
    "shard_unreadable": "a shard that cannot be opened (all its samples)",
    "missing_from_shard": "fewer samples in a shard than its sizes.json says",
}
SHOWN_BAD_SAMPLES = 20  # per split, logged one by one; the rest only counted (per shard and reason)


class BadSample(Exception):
    """A sample that is skipped and counted: ``reason`` is a key of ``BAD_REASONS``."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


class BadSamples:
    """Screens samples and counts those skipped, per split, reason and shard; stops (DataSourceError
    naming the shard) once more than ``max_fraction`` of a split's samples are bad: as soon as the
    split's expected size (sizes.json, or the csv's rows) says so, else at the end of the split.

    The embedding size is that of the first good sample (of the first split); every later sample,
    of any split, must have it."""

    def __init__(self, max_fraction: float = 0.001, log: Callable[[str], None] | None = None):
        if not 0 <= float(max_fraction) < 1:
            raise DataSourceError(
                f"osv5m: max_bad_fraction {max_fraction!r} (config key 'osv5m.max_bad_fraction') is not in [0, 1)"
            )
        self.max_fraction = float(max_fraction)
        self.log = log or (lambda message: None)
        self.width: int | None = None
        self.width_from = ""
        self.start("?")

    def start(self, split: str, expected: int | None = None) -> None:
        self.split, self.expected, self.good = split, expected, 0
        self.reasons: dict[str, int] = {}
        self.shards: dict[str, int] = {}
        self.examples: list[str] = []

    @property
    def bad(self) -> int:
        return sum(self.reasons.values())

    def add(self, reason: str, shard: Path | str, where: str, message: str, n: int = 1) -> None:
        """Count ``n`` bad samples (logged, the first ones one by one) and stop above the fraction."""
        assert reason in BAD_REASONS, reason
        if n <= 0:
            return
        self.reasons[reason] = self.reasons.get(reason, 0) + n
        self.shards[str(shard)] = self.shards.get(str(shard), 0) + n
        text = f"{where}: {message}"
        if len(self.examples) < SHOWN_BAD_SAMPLES:
            self.examples.append(text)
            self.log(f"prepare {self.split}: skipped {text}" + (f" ({n:,} samples)" if n > 1 else ""))
        if self.expected and self.bad > self.max_fraction * self.expected:
            self.stop(shard, self.expected)

    def stop(self, shard, total: int) -> None:
        bad = self.bad
        reasons = ", ".join(f"{r} {n:,}" for r, n in sorted(self.reasons.items(), key=lambda x: -x[1]))
        shards = ", ".join(f"{s} ({n:,})" for s, n in sorted(self.shards.items(), key=lambda x: -x[1])[:5])
        raise DataSourceError(
            f"osv5m: split {self.split!r}: {bad:,} of {total:,} samples are bad ({bad / max(total, 1):.3%}), more "
            f"than osv5m.max_bad_fraction = {self.max_fraction:g} (config key 'osv5m.max_bad_fraction'); stopped at "
            f"{shard}; bad samples by reason: {reasons}; by shard: {shards}; the first: {' | '.join(self.examples[:5])}; "
            f"download the damaged shards again or fix the rows named, or raise osv5m.max_bad_fraction"
        )

    def finish(self) -> dict:
        """The split's counts (for the summary); stops if more than the fraction was bad."""
        total = max(self.good + self.bad, self.expected or 0)
        if self.bad > self.max_fraction * total:
            self.stop(f"the end of split {self.split!r}", total)
        if self.bad:
            self.log(
                f"prepare {self.split}: skipped {self.bad:,} bad samples of {total:,} ("
                + ", ".join(f"{r} {n:,}" for r, n in sorted(self.reasons.items()))
                + ")"
            )
        return {
            "bad_samples": self.bad,
            "bad_by_reason": dict(sorted(self.reasons.items())),
            "bad_by_shard": dict(sorted(self.shards.items())),
            "bad_first": list(self.examples),
        }

    def embedding(self, emb: np.ndarray, where: str) -> np.ndarray:
        """``emb`` if it fits the float16 cache and has the split's size; else BadSample."""
        if self.width is not None and emb.size != self.width:
            raise BadSample(
                "embedding_wrong_size",
                f"embedding of {emb.size} values where the first sample ({self.width_from}) has {self.width}",
            )
        peak = float(np.max(np.abs(emb))) if emb.size else 0.0
        if not peak <= FLOAT16_MAX:  # NaN fails too
            if not np.isfinite(emb).all():
                bad = np.flatnonzero(~np.isfinite(emb))
                raise BadSample(
                    "embedding_not_finite", f"embedding holds {len(bad)} NaN/inf value(s) (first at index {bad[0]})"
                )
            raise BadSample(
                "embedding_beyond_float16",
                f"embedding value {peak:g} is beyond float16's range (|x| <= {FLOAT16_MAX:g}); "
                f"the float16 cache would hold inf",
            )
        if self.width is None:
            if emb.size == 0:
                raise BadSample("embedding_wrong_size", "embedding of 0 values")
            self.width, self.width_from = emb.size, where
        self.good += 1
        return emb


def _check_coords(lat, lon) -> tuple[float, float]:
    """Finite latitude and longitude in range, or BadSample. Out-of-range coordinates are skipped, not
    wrapped: in OSV5M's metadata they can only come from a damaged or swapped row, whose place
    wrapping would not recover."""
    if lat is None or lon is None or lat == "" or lon == "":
        raise BadSample("coordinates_missing", f"latitude/longitude missing ({lat!r}, {lon!r})")
    try:
        la, lo = float(lat), float(lon)
    except (TypeError, ValueError):
        raise BadSample("coordinates_invalid", f"latitude/longitude are not numbers ({lat!r}, {lon!r})") from None
    if not (np.isfinite(la) and np.isfinite(lo)):
        raise BadSample("coordinates_invalid", f"latitude/longitude not finite ({la}, {lo})")
    if not (-90 <= la <= 90 and -180 <= lo <= 180):
        raise BadSample("coordinates_out_of_range", f"latitude {la} / longitude {lo} out of range")
    return la, lo


# ------------------------------------------------------------------------------ the wds layout
def shard_sizes(root: Path | str, split: str) -> dict[str, int]:
    """The samples per shard that ``sizes.json`` announces, by shard file name: ``<split>/sizes.json``
    (keys: shard names, the webdataset convention) or ``sizes.json`` at the top (keys
    ``<split>/<shard>``); {} without one. An unreadable sizes.json is an error naming it."""
    root = Path(root)
    sizes: dict[str, int] = {}
    for path, prefix in ((root / "sizes.json", f"{split}/"), (root / split / "sizes.json", "")):
        if not path.is_file():
            continue
        try:
            table = json.loads(path.read_text())
            items = {str(k): int(v) for k, v in table.items()}
        except (ValueError, TypeError, AttributeError, OSError) as e:
            raise DataSourceError(f"osv5m: {path} is not a JSON object of shard sizes ({e})") from None
        sizes.update(
            {k[len(prefix) :]: v for k, v in items.items() if k.startswith(prefix) and "/" not in k[len(prefix) :]}
        )
    return sizes


def iter_wds(root: Path | str, split: str, chunk: int = 8192, bad: BadSamples | None = None) -> Iterator[Chunk]:
    """Stream one split of the osv5m-wds layout shard by shard. A bad sample (see ``BAD_REASONS``) is
    skipped and counted in ``bad``, which stops the preparation above its fraction; a damaged tar
    header is skipped over (the reading goes on at the next member); a shard holding fewer samples
    than its sizes.json says counts the missing ones."""
    bad = bad if bad is not None else BadSamples()
    sizes = shard_sizes(root, split)
    rows: list = []
    for shard in shards(Path(root), split):
        buffer: dict[str, dict] = {}
        seen: set[str] = set()
        key, error = None, ""
        try:
            # ignore_zeros: skip a damaged header block by block to the next readable member, rather
            # than taking it for the end of the shard (tarfile's default, which loses the rest silently)
            with tarfile.open(shard, mode="r|", ignore_zeros=True) as tar:
                for member in tar:
                    if not member.isfile():
                        continue
                    name = member.name.rsplit("/", 1)[-1]
                    if name.endswith(".json"):
                        key, part = name[: -len(".json")], "json"
                    elif name.endswith(EMBEDDING_SUFFIX):
                        key, part = name[: -len(EMBEDDING_SUFFIX)], "npy"
                    else:
                        key = None
                        continue  # the image, or other extras
                    seen.add(key)
                    data = tar.extractfile(member).read()
                    sample = buffer.setdefault(key, {})
                    sample[part] = data
                    if "json" in sample and "npy" in sample:
                        del buffer[key]
                        row = _screened(bad, shard, f"shard {shard}, sample {key!r}", _wds_row, key, sample)
                        if row is not None:
                            rows.append(row)
                            if len(rows) >= chunk:
                                yield _chunk(rows)
                                rows = []
                    key = None
        except (tarfile.TarError, EOFError, OSError) as e:
            what = f"{type(e).__name__}: {e}"
            error = f" ({what})"
            if key is not None:  # the member being read: its sample is lost
                buffer.pop(key, None)
                bad.add("member_unreadable", shard, f"shard {shard}, sample {key!r}", f"unreadable ({what})")
            elif seen and shard.name in sizes:  # between members: sizes.json counts what is lost below
                bad.log(f"prepare {split}: shard {shard} is unreadable after its sample {len(seen):,} ({what})")
            elif seen:  # no sizes.json: at least one sample is lost
                bad.add(
                    "member_unreadable", shard, f"shard {shard}", f"unreadable after {len(seen):,} samples ({what})"
                )
        if not seen:
            # tarfile (ignore_zeros) reads a file that is no tar as a tar without members
            n = sizes.get(shard.name, 1)
            if n:
                bad.add("shard_unreadable", shard, f"shard {shard}", f"not a readable tar: no sample in it{error}", n)
            continue
        for key, sample in buffer.items():
            missing = (
                ("embedding_missing", "embedding (.street_clip.npy)")
                if "npy" not in sample
                else (
                    "metadata_missing",
                    "metadata (.json)",
                )
            )
            bad.add(missing[0], shard, f"shard {shard}, sample {key!r}", f"has no {missing[1]}")
        if shard.name in sizes and len(seen) < sizes[shard.name]:
            n = sizes[shard.name] - len(seen)
            bad.add(
                "missing_from_shard",
                shard,
                f"shard {shard}",
                f"holds {len(seen):,} samples where sizes.json says {sizes[shard.name]:,}: {n:,} missing",
                n,
            )
        elif sizes and shard.name not in sizes:
            bad.log(f"prepare {split}: shard {shard} is not in sizes.json; its samples are not checked against it")
        if bad.shards.get(str(shard)):
            bad.log(f"prepare {split}: shard {shard}: {bad.shards[str(shard)]:,} bad samples skipped")
    if rows:
        yield _chunk(rows)


def _screened(bad: BadSamples, shard, where: str, make, *args):
    """``make(*args, where)`` screened by ``bad``: the row, or None (counted) for a bad sample."""
    try:
        ident, coords, emb, labels = make(*args)
        return ident, coords, bad.embedding(emb, where), labels
    except BadSample as e:
        bad.add(e.reason, shard, where, str(e))
        return None


def _wds_row(key: str, sample: dict):
    try:
        meta = json.loads(sample["json"])
        if not isinstance(meta, dict):
            raise ValueError(f"a JSON {type(meta).__name__}, not an object")
    except (ValueError, UnicodeDecodeError) as e:
        raise BadSample("metadata_unreadable", f"unreadable .json ({e})") from None
    if "latitude" not in meta or "longitude" not in meta:
        raise BadSample("coordinates_missing", f"no latitude/longitude in its .json (keys: {', '.join(sorted(meta))})")
    lat, lon = _check_coords(meta["latitude"], meta["longitude"])
    try:
        emb = _npy_vector(sample["npy"])
    except ValueError as e:
        raise BadSample("embedding_unreadable", f"unreadable embedding ({e})") from None
    ident = str(meta.get("id", key))
    return ident, (lat, lon), emb, {c: str(meta.get(c, "")) for c in LABEL_COLUMNS}


_NPY_HEADERS: dict[bytes, tuple[np.dtype, int]] = {}


def _npy_vector(data: bytes) -> np.ndarray:
    """A flat array from .npy bytes; the header is parsed once per distinct header (all samples share
    one), which makes reading shards several times faster than np.load per sample."""
    if data[:6] != b"\x93NUMPY" or len(data) < 10 or data[6] not in (1, 2, 3):
        raise ValueError("not an .npy file")
    size = 2 if data[6] == 1 else 4
    header_len = int.from_bytes(data[8 : 8 + size], "little")
    offset = 8 + size + header_len
    header = data[8 + size : offset]
    if header not in _NPY_HEADERS:
        import ast

        try:
            d = ast.literal_eval(header.decode("latin1"))
            if not isinstance(d, dict) or d.get("fortran_order") or not isinstance(d.get("shape"), tuple):
                raise ValueError(f"unsupported .npy header {d}")
            dtype = np.dtype(d["descr"])
        except (SyntaxError, ValueError, TypeError, KeyError, MemoryError, RecursionError) as e:
            raise ValueError(f"unreadable .npy header ({e})") from None
        if dtype.hasobject:
            raise ValueError("object arrays are not embeddings")
        if dtype.kind not in "fiu":
            raise ValueError(f"{dtype} is not a number type")
        _NPY_HEADERS[header] = (dtype, int(np.prod(d["shape"])))
    dtype, count = _NPY_HEADERS[header]
    if len(data) - offset != count * dtype.itemsize:
        raise ValueError(f"{len(data) - offset} bytes of data where the header announces {count} x {dtype}")
    return np.frombuffer(data, dtype=dtype, count=count, offset=offset)


def _chunk(rows) -> Chunk:
    return Chunk(
        [r[0] for r in rows],
        np.array([r[1] for r in rows], dtype=np.float64),
        np.stack([r[2] for r in rows]),
        {c: [r[3][c] for r in rows] for c in LABEL_COLUMNS},
    )


# ------------------------------------------------------------------------------ the csv layout
def csv_rows(table: Path | str, chunk: int = 1_000_000) -> int:
    """The rows of an OSV5M csv; refuses (naming the id and its rows) one whose ids repeat: two rows
    with one id would share one ``<id>.npy``. Reads the id column only, hashed (8 bytes a row)."""
    import pandas as pd

    table = Path(table)
    try:
        hashes = [
            pd.util.hash_array(frame["id"].to_numpy(dtype=object))
            for frame in pd.read_csv(table, usecols=["id"], dtype={"id": str}, keep_default_na=False, chunksize=chunk)
        ]
    except ValueError as e:
        raise DataSourceError(f"osv5m: {table}: no readable id column ({e})") from None
    h = np.concatenate(hashes) if hashes else np.zeros(0, np.uint64)
    values, counts = np.unique(h, return_counts=True)
    repeated = set(values[counts > 1].tolist())
    if repeated:
        rows: dict[str, list[int]] = {}
        start = 0
        for frame in pd.read_csv(table, usecols=["id"], dtype={"id": str}, keep_default_na=False, chunksize=chunk):
            ids = frame["id"].to_numpy(dtype=object)
            for i in np.flatnonzero(np.isin(pd.util.hash_array(ids), list(repeated))):
                rows.setdefault(ids[i], []).append(start + int(i) + 2)  # line numbers: the header is line 1
            start += len(frame)
        dups = {k: v for k, v in rows.items() if len(v) > 1}
        if dups:
            first = next(iter(dups))
            raise DataSourceError(
                f"osv5m: {table}: id {first!r} is on lines {', '.join(map(str, dups[first]))}"
                + (f" (and {len(dups) - 1:,} more ids repeat)" if len(dups) > 1 else "")
                + "; each id names one embedding <id>.npy, so its rows would share it: remove the repeated rows"
            )
    return len(h)


def iter_csv(
    root: Path | str,
    split: str,
    embeddings: Path | str | None = None,
    chunk: int = 8192,
    bad: BadSamples | None = None,
) -> Iterator[Chunk]:
    """Stream ``<split>.csv`` in chunks with each row's ``<id>.npy``; a bad row (see ``BAD_REASONS``)
    is skipped and counted in ``bad``."""
    import pandas as pd

    bad = bad if bad is not None else BadSamples()
    root = Path(root)
    table = root / f"{split}.csv"
    emb_root = Path(embeddings) if embeddings else root / "embeddings"
    folders = [emb_root / split, emb_root]
    for frame in pd.read_csv(table, chunksize=chunk, dtype={"id": str}, keep_default_na=False):
        missing = [c for c in ("id", "latitude", "longitude") if c not in frame.columns]
        if missing:
            raise DataSourceError(f"osv5m: {table} has no column(s) {', '.join(missing)}")
        labels = {c: [str(v) for v in frame[c]] if c in frame.columns else [""] * len(frame) for c in LABEL_COLUMNS}
        rows = []
        for i, (ident, lat, lon) in enumerate(zip(frame["id"], frame["latitude"], frame["longitude"])):
            row = _screened(
                bad,
                table,
                f"{table} row id {ident!r}",
                _csv_row,
                ident,
                lat,
                lon,
                folders,
                {c: labels[c][i] for c in LABEL_COLUMNS},
            )
            if row is not None:
                rows.append(row)
        if rows:
            yield _chunk(rows)


def _csv_row(ident, lat, lon, folders, labels):
    coords = _check_coords(lat, lon)
    path = next((f / f"{ident}.npy" for f in folders if (f / f"{ident}.npy").is_file()), None)
    if path is None:
        raise BadSample("embedding_missing", f"no embedding {ident}.npy (looked in {', '.join(map(str, folders))})")
    try:
        emb = np.load(path, allow_pickle=False).reshape(-1)
        if emb.dtype.kind not in "fiu":
            raise ValueError(f"{emb.dtype} is not a number type")
    except (ValueError, OSError, EOFError) as e:
        raise BadSample("embedding_unreadable", f"unreadable embedding {path} ({e})") from None
    return ident, coords, emb, labels


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


VALIDATION_MODES = ("auto", "folder", "test_size")


def _validation_mode(validation, layout: str, root: Path) -> str | float:
    """The validation rows ``prepare`` uses: ``folder`` (osv5m-wds val/), ``test_size`` or a fraction;
    ``auto``: the val/ split where it exists, else ``test_size``. Refuses a bad value, naming the key."""
    has_folder = layout == "wds" and bool(shards(root, "val"))
    if validation == "auto":
        return "folder" if has_folder else "test_size"
    if validation == "folder":
        if not has_folder:
            raise DataSourceError(
                f"osv5m: validation 'folder' (config key 'osv5m.validation') needs osv5m-wds shards in {root / 'val'}"
            )
        return "folder"
    if validation == "test_size":
        return "test_size"
    try:
        fraction = float(validation)
    except (TypeError, ValueError):
        fraction = float("nan")
    if not 0 < fraction < 1:
        raise DataSourceError(
            f"osv5m: validation {validation!r} (config key 'osv5m.validation') is neither 'auto', 'folder', "
            f"'test_size' nor a fraction in (0, 1)"
        )
    return fraction


def prepare(
    root: Path | str,
    out_dir: Path | str,
    *,
    embeddings: Path | str | None = None,
    validation="test_size",
    validation_seed: int = 0,
    max_bad_fraction: float = 0.001,
    chunk: int = 8192,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Convert the data under ``root`` into the cache in ``out_dir``; returns the summary (also summary.json).

    ``validation``: ``"test_size"`` (a seeded hold-out of the test set's size from the training
    rows, as Table 1's 210k validation points suggest), a fraction of the training rows (float in
    (0, 1)), ``"folder"`` (the osv5m-wds ``val/`` shards) or ``"auto"`` (the workflow's default:
    ``folder`` where val/ shards exist, else ``test_size``). The summary says which was used.

    A bad sample (``BAD_REASONS``) is skipped and counted per reason and shard in the summary and the
    log; more than ``max_bad_fraction`` of a split's samples bad stops the preparation, naming the
    shard. A failure after a split was written removes the cache's files (an earlier cache's too).
    """
    root, out_dir = Path(root), Path(out_dir)
    layout = detect_layout(root)
    mode = _validation_mode(validation, layout, root)
    log = log or (lambda message: None)
    bad = BadSamples(max_bad_fraction, log)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    try:
        return _prepare(root, out_dir, layout, embeddings, validation, mode, validation_seed, bad, chunk, log, written)
    except BaseException:
        if written:  # the files of an earlier cache would no longer match the ones written here
            for name in CACHE_FILES + [f"val_{n}" for n in ("embeddings.npy", "targets.npy", "meta.csv")]:
                (out_dir / name).unlink(missing_ok=True)
        raise


def _prepare(root, out_dir, layout, embeddings, validation, mode, validation_seed, bad, chunk, log, written) -> dict:
    from ...io import atomic_path, atomic_write_json

    splits = ["train", "test"] + (["val"] if mode == "folder" else [])
    summary = {
        "layout": layout,
        "root": str(root),
        "splits": {},
        "max_bad_fraction": bad.max_fraction,
        "out_of_range_coordinates": "skipped",
    }
    for split in splits:
        start = time.perf_counter()
        if layout == "wds":
            sizes = shard_sizes(root, split)
            split_shards = shards(root, split)
            expected = sum(sizes[s.name] for s in split_shards) if all(s.name in sizes for s in split_shards) else None
            bad.start(split, expected)
            source = iter_wds(root, split, chunk, bad)
        else:
            bad.start(split, csv_rows(root / f"{split}.csv"))
            source = iter_csv(root, split, embeddings, chunk, bad)
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
                raise DataSourceError(f"osv5m: split {split!r} of {root} has no good samples")
            counts = bad.finish()
            emb_file.close()
            target_file.close()
        written += [emb_path, target_path, meta_path]
        seconds = time.perf_counter() - start
        summary["splits"][split] = {
            "rows": emb_file.rows,
            "seconds": round(seconds, 3),
            "rows_per_second": round(emb_file.rows / max(seconds, 1e-9), 1),
            **counts,
        }
        summary["features"] = emb_file.width
    n_train, n_test = summary["splits"]["train"]["rows"], summary["splits"]["test"]["rows"]
    if mode == "folder":
        n_val = 0
    elif mode == "test_size":
        n_val = min(n_test, n_train // 2)
    else:
        n_val = int(round(mode * n_train))
    if mode != "folder" and not 0 < n_val < n_train:
        raise DataSourceError(
            f"osv5m: validation {validation!r} (config key 'osv5m.validation') leaves "
            + (f"no training rows: all {n_train:,}" if n_val >= n_train else f"no validation rows of the {n_train:,}")
            + f" good training rows of {root} go to the validation split; use a fraction that leaves both"
        )
    rows = np.random.default_rng(validation_seed).permutation(n_train)
    for name, part in (("train_rows.npy", rows[n_val:]), ("val_rows.npy", rows[:n_val])):
        with atomic_path(out_dir / name) as tmp, open(tmp, "wb") as f:
            np.save(f, np.sort(part))
        written.append(out_dir / name)
    if mode == "folder":
        source = "the osv5m-wds val/ split"
    else:
        size = "as many rows as the test set" if mode == "test_size" else f"a fraction {mode:g}"
        source = f"carved from the training rows ({size}, seed {validation_seed})"
    summary["validation"] = {"mode": mode, "requested": validation, "seed": validation_seed, "source": source}
    summary["table1"] = {
        "#num. features": summary["features"],
        "#num. train points": n_train - n_val,
        "#num. val points": n_val if mode != "folder" else summary["splits"]["val"]["rows"],
        "#num. test points": n_test,
    }
    atomic_write_json(out_dir / "summary.json", summary)
    t = summary["table1"]
    log(f"validation: {summary['validation']['source']}")
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
    """The prepared cache, memory-mapped: ``embeddings(split)``, ``coordinates(split)`` (degrees).

    A damaged file (truncated, overwritten, of another shape than summary.json says) raises
    DamagedFile naming it and what to do: prepare the cache again."""

    def __init__(self, folder: Path | str):
        from ...io import read_json

        self.folder = Path(folder)
        self.remedy = (
            f"delete the cache folder {self.folder} and prepare it again (rule osv5m_prepare; "
            f"snakemake --forcerun osv5m_prepare ...)"
        )
        self.summary = read_json(self.folder / "summary.json", self.remedy)

    def _load(self, name: str, mmap: bool = False) -> np.ndarray:
        import zipfile

        from ...io import damaged

        path = self.folder / name
        try:
            data = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
            if not isinstance(data, np.ndarray):  # an .npz (a zip) where an .npy belongs
                raise ValueError(f"not an .npy file but {type(data).__name__}")
            split = name.split("_", 1)[0]
            rows = self.summary["splits"].get(split, {}).get("rows")
            if name.endswith("_rows.npy"):
                n = self.summary["splits"]["train"]["rows"]
                if data.ndim != 1 or (len(data) and not 0 <= data.min() <= data.max() < n):
                    raise ValueError(f"row numbers outside the {n:,} training rows")
            elif rows is not None and data.shape[:1] != (rows,):
                raise ValueError(f"shape {data.shape}, where summary.json says {rows:,} rows")
            elif name.endswith("_embeddings.npy") and data.shape[1:] != (self.summary["features"],):
                raise ValueError(f"shape {data.shape}, where summary.json says {self.summary['features']} features")
        except FileNotFoundError:
            raise DataSourceError(f"osv5m: the cache file {path} is missing; {self.remedy}") from None
        except (ValueError, OSError, EOFError, KeyError, TypeError, zipfile.BadZipFile) as e:
            raise damaged(path, e, self.remedy) from None
        return data

    def _file_split(self, split: str) -> tuple[str, np.ndarray | None]:
        if split == "test" or (split == "val" and self.summary["validation"]["mode"] == "folder"):
            return split, None
        return "train", self._load(f"{split}_rows.npy")

    def embeddings(self, split: str) -> np.ndarray:
        name, rows = self._file_split(split)
        data = self._load(f"{name}_embeddings.npy", mmap=True)
        return data if rows is None else _take_rows(data, rows)

    def coordinates(self, split: str) -> np.ndarray:
        name, rows = self._file_split(split)
        data = self._load(f"{name}_targets.npy")
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
