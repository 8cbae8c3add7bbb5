"""Data sources of the dataset registry (config.yaml ``datasets``): each turns one entry into raw data.

A source has two steps: ``fetch`` (network, run by the workflow's download rules only) fills
the raw-data cache, and ``load`` (offline) reads a dataset from the cache or a local file. Sources
that need no network (``file``, ``sklearn``, ``synthetic``: local.py) have nothing to fetch; the
network sources ``openml``, ``uci`` and ``medmnist`` have a module each; ``osv5m`` (OpenStreetView-5M
embeddings) is read by its own stage.
"""

from __future__ import annotations

from pathlib import Path

from ..cache import FileCheck, verified_files
from . import local, medmnist, openml, osv5m, uci
from .base import DataSourceError, RawData, Source
from .local import synthetic_table

__all__ = [
    "DataSourceError",
    "RawData",
    "Source",
    "SOURCES",
    "get_source",
    "raw_files",
    "load_verified",
    "synthetic_table",
]


# The source registry: a new source is a module with a Source, and one entry here.
SOURCES: dict[str, Source] = {
    source.name: source
    for source in (local.FILE, local.SKLEARN, local.SYNTHETIC, openml.SOURCE, uci.SOURCE, medmnist.SOURCE, osv5m.SOURCE)
}


def get_source(key: str, spec: dict) -> Source:
    name = spec.get("source")
    if name not in SOURCES:
        raise DataSourceError(
            f"dataset {key!r}: unknown source {name!r} (config key 'datasets.{key}.source'); known: {', '.join(SOURCES)}"
        )
    return SOURCES[name]


def raw_files(key: str, spec: dict, cache_dir: Path | str) -> list[Path]:
    """The files a dataset is prepared from: its cache file(s) for a network source, its ``path``
    for the file source, none for generated or bundled data. The prepare rule depends on them."""
    source = get_source(key, spec)
    if source.cache_files is not None:
        return source.cache_files(key, spec, Path(cache_dir))
    if source.name == "file":
        return [Path(spec["path"])]
    return []


def load_verified(key: str, spec: dict, cache_dir: Path | str) -> tuple[RawData, list[FileCheck]]:
    """Check the dataset's files against their recorded checksums, then load it."""
    source = get_source(key, spec)
    official = source.publisher_checksum(key, spec)
    checks = verified_files(key, spec, raw_files(key, spec, cache_dir), official, missing_ok=not source.needs_network)
    return source.load(key, spec, Path(cache_dir)), checks
