"""Sources that need no network: ``file`` (a CSV or parquet file), ``sklearn`` (a dataset bundled
with scikit-learn) and ``synthetic`` (a seeded generator, the demo's 2-D target)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .base import DataSourceError, RawData, Source, targets_of
from .tables import DuplicateColumns, read_table


def load_file(key: str, spec: dict, cache_dir: Path) -> RawData:
    """A local CSV or parquet file (``path``, relative to the working directory) with named target column(s)."""
    path = Path(spec["path"])
    if not path.exists():
        raise DataSourceError(f"dataset {key!r}: file {path} (config key 'datasets.{key}.path') does not exist")
    try:
        table = read_table(path, spec.get("separator", ","))
    except DuplicateColumns as e:
        raise DataSourceError(f"dataset {key!r}: {e}") from None
    except Exception as e:  # pandas raises many types for unreadable files
        raise DataSourceError(f"dataset {key!r}: cannot read {path}: {e}") from e
    return RawData(table=table, targets=targets_of(key, spec), description=f"file {path}")


def load_sklearn(key: str, spec: dict, cache_dir: Path) -> RawData:
    """A dataset bundled with scikit-learn (``name``: diabetes, ...), loaded as a data frame."""
    import sklearn.datasets

    name = spec.get("name", key)
    loader = getattr(sklearn.datasets, f"load_{name}", None)
    if loader is None:
        raise DataSourceError(
            f"dataset {key!r}: scikit-learn has no bundled dataset {name!r} (config key 'datasets.{key}.name')"
        )
    bunch = loader(as_frame=True)
    table = bunch.frame
    targets = (
        targets_of(key, spec)
        if "target" in spec
        else [c for c in table.columns if c == "target"] or [table.columns[-1]]
    )
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
    table = synthetic_table(
        int(spec.get("n", 2000)),
        int(spec.get("features", 8)),
        m,
        float(spec.get("noise", 0.05)),
        int(spec.get("seed", 0)),
    )
    return RawData(table=table, targets=[f"y{i + 1}" for i in range(m)], description="synthetic (seeded generator)")


FILE = Source("file", load_file)
SKLEARN = Source("sklearn", load_sklearn)
SYNTHETIC = Source("synthetic", load_synthetic)
