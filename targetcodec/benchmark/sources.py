"""Data sources of the dataset registry (config.yaml ``datasets``): each turns one entry into raw data.

A source has two steps: ``fetch`` (network, run by the workflow's ``download`` rule only) fills
the raw-data cache, and ``load`` (offline) reads a dataset from the cache or a local file. Sources
that need no network (``file``, ``sklearn``, ``synthetic``) have nothing to fetch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd


class DataSourceError(RuntimeError):
    """A dataset cannot be loaded; the message names the dataset, its source and what to do."""


@dataclass
class RawData:
    """What a source delivers: a table (features and target columns) or images with targets."""

    table: pd.DataFrame | None = None  # tabular: every column, targets included
    targets: list[str] = field(default_factory=list)  # target column names (m of them)
    images: dict[str, np.ndarray] | None = None  # image data: {split: [n, H, W, C] uint8}
    image_targets: dict[str, np.ndarray] | None = None  # {split: [n, m]}
    description: str = ""

    @property
    def official_split(self) -> bool:
        return self.images is not None


@dataclass(frozen=True)
class Source:
    name: str
    load: Callable[[str, dict, Path], RawData]
    fetch: Callable[[str, dict, Path], list[Path]] | None = None  # None: nothing to download
    cache_files: Callable[[str, dict, Path], list[Path]] | None = None  # what fetch writes

    @property
    def needs_network(self) -> bool:
        return self.fetch is not None


def _targets_of(key: str, spec: dict) -> list[str]:
    target = spec.get("target")
    if target is None:
        raise DataSourceError(f"dataset {key!r}: config key 'datasets.{key}.target' is required for source {spec['source']!r}")
    return [target] if isinstance(target, str) else list(target)


def load_file(key: str, spec: dict, cache_dir: Path) -> RawData:
    """A local CSV or parquet file (``path``, relative to the working directory) with named target column(s)."""
    path = Path(spec["path"])
    if not path.exists():
        raise DataSourceError(f"dataset {key!r}: file {path} (config key 'datasets.{key}.path') does not exist")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            table = pd.read_parquet(path)
        else:
            table = pd.read_csv(path, sep=spec.get("separator", ","))
    except Exception as e:  # pandas raises many types for unreadable files
        raise DataSourceError(f"dataset {key!r}: cannot read {path}: {e}") from e
    return RawData(table=table, targets=_targets_of(key, spec), description=f"file {path}")


def load_sklearn(key: str, spec: dict, cache_dir: Path) -> RawData:
    """A dataset bundled with scikit-learn (``name``: diabetes, ...), loaded as a data frame."""
    import sklearn.datasets

    name = spec.get("name", key)
    loader = getattr(sklearn.datasets, f"load_{name}", None)
    if loader is None:
        raise DataSourceError(f"dataset {key!r}: scikit-learn has no bundled dataset {name!r} (config key 'datasets.{key}.name')")
    bunch = loader(as_frame=True)
    table = bunch.frame
    targets = _targets_of(key, spec) if "target" in spec else [c for c in table.columns if c == "target"] or [table.columns[-1]]
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
}


def get_source(key: str, spec: dict) -> Source:
    name = spec.get("source")
    if name not in SOURCES:
        raise DataSourceError(f"dataset {key!r}: unknown source {name!r} (config key 'datasets.{key}.source'); known: {', '.join(SOURCES)}")
    return SOURCES[name]


def load_dataset(key: str, spec: dict, cache_dir: Path | str) -> RawData:
    return get_source(key, spec).load(key, spec, Path(cache_dir))
