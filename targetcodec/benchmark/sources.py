"""Data sources of the dataset registry (config.yaml ``datasets``): each turns one entry into raw data.

A source has two steps: ``fetch`` (network, run by the workflow's download rules only) fills
the raw-data cache, and ``load`` (offline) reads a dataset from the cache or a local file. Sources
that need no network (``file``, ``sklearn``, ``synthetic``, here) have nothing to fetch; the
network sources ``openml``, ``uci`` and ``medmnist`` live in their own modules.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from . import medmnist_source, openml_source, uci_source
from .cache import FileCheck, verified_files
from .rawdata import DataSourceError, RawData, Source, targets_of
from .table_sources import read_table

__all__ = ["DataSourceError", "RawData", "Source", "SOURCES", "get_source", "load_dataset", "raw_files",
           "load_verified", "synthetic_table"]


def load_file(key: str, spec: dict, cache_dir: Path) -> RawData:
    """A local CSV or parquet file (``path``, relative to the working directory) with named target column(s)."""
    path = Path(spec["path"])
    if not path.exists():
        raise DataSourceError(f"dataset {key!r}: file {path} (config key 'datasets.{key}.path') does not exist")
    try:
        table = read_table(path, spec.get("separator", ","))
    except Exception as e:  # pandas raises many types for unreadable files
        raise DataSourceError(f"dataset {key!r}: cannot read {path}: {e}") from e
    return RawData(table=table, targets=targets_of(key, spec), description=f"file {path}")


def load_sklearn(key: str, spec: dict, cache_dir: Path) -> RawData:
    """A dataset bundled with scikit-learn (``name``: diabetes, ...), loaded as a data frame."""
    import sklearn.datasets

    name = spec.get("name", key)
    loader = getattr(sklearn.datasets, f"load_{name}", None)
    if loader is None:
        raise DataSourceError(f"dataset {key!r}: scikit-learn has no bundled dataset {name!r} (config key 'datasets.{key}.name')")
    bunch = loader(as_frame=True)
    table = bunch.frame
    targets = targets_of(key, spec) if "target" in spec else [c for c in table.columns if c == "target"] or [table.columns[-1]]
    return RawData(table=table, targets=targets, description=f"scikit-learn load_{name}")


def synthetic_table(n: int, features: int, targets: int, noise: float, seed: int) -> pd.DataFrame:
    """A seeded nonlinear regression problem with 1 or 2 targets (the 2-D one exercises m > 1).

    y1 = sin(2 pi x1) + 2 (x2 - 1/2)^2 + x3 x4,  y2 = cos(pi x5) * x1 + |x6 - 1/2|, plus Gaussian noise;
    the remaining features are uninformative, as in the tabular benchmark of Grinsztajn et al.
    """
    if features < 6:
        raise DataSourceError(f"synthetic data needs at least 6 features, got {features}")
    rng = np.random.default_rng(seed)
    X = rng.uniform(size=(n, features))
    y1 = np.sin(2 * np.pi * X[:, 0]) + 2 * (X[:, 1] - 0.5) ** 2 + X[:, 2] * X[:, 3]
    y2 = np.cos(np.pi * X[:, 4]) * X[:, 0] + np.abs(X[:, 5] - 0.5)
    ys = [y1, y2][:targets]
    table = pd.DataFrame(X, columns=[f"x{i + 1}" for i in range(features)])
    for i, y in enumerate(ys):
        table[f"y{i + 1}"] = y + noise * rng.normal(size=n)
    return table


def load_synthetic(key: str, spec: dict, cache_dir: Path) -> RawData:
    m = int(spec.get("targets", 1))
    if m not in (1, 2):
        raise DataSourceError(f"dataset {key!r}: config key 'datasets.{key}.targets' must be 1 or 2, got {m}")
    table = synthetic_table(int(spec.get("n", 2000)), int(spec.get("features", 8)), m, float(spec.get("noise", 0.05)), int(spec.get("seed", 0)))
    return RawData(table=table, targets=[f"y{i + 1}" for i in range(m)], description="synthetic (seeded generator)")


SOURCES: dict[str, Source] = {
    "file": Source("file", load_file),
    "sklearn": Source("sklearn", load_sklearn),
    "synthetic": Source("synthetic", load_synthetic),
    "openml": openml_source.SOURCE,
    "uci": uci_source.SOURCE,
    "medmnist": medmnist_source.SOURCE,
}


def get_source(key: str, spec: dict) -> Source:
    name = spec.get("source")
    if name not in SOURCES:
        raise DataSourceError(f"dataset {key!r}: unknown source {name!r} (config key 'datasets.{key}.source'); known: {', '.join(SOURCES)}")
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


def load_dataset(key: str, spec: dict, cache_dir: Path | str) -> RawData:
    return load_verified(key, spec, cache_dir)[0]
