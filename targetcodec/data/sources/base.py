"""What every data source shares: the raw data it delivers, its interface, and its error type.

Kept apart from the sources themselves so that the local sources (local.py) and the network
sources (openml.py, uci.py, medmnist.py) can all import it without cycles.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataSourceError


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
    """One kind of ``source`` in config.yaml.

    ``load(key, spec, cache_dir)`` reads a dataset without the network. Network sources also have
    ``cache_files(key, spec, cache_dir)``, the files ``load`` reads from the raw-data cache, and
    ``fetch(key, spec, cache_dir, policy, log)``, which downloads them (run by the workflow's
    download rules only). ``official_digest(key, spec)`` gives a checksum the data's publisher
    records, as ``(algorithm, hex digest)``, where there is one.
    """

    name: str
    load: Callable[[str, dict, Path], RawData]
    fetch: Callable | None = None  # None: nothing to download
    cache_files: Callable[[str, dict, Path], list[Path]] | None = None  # what fetch writes
    official_digest: Callable[[str, dict], tuple[str, str] | None] | None = None

    @property
    def needs_network(self) -> bool:
        return self.fetch is not None

    def publisher_checksum(self, key: str, spec: dict) -> tuple[str, str] | None:
        return self.official_digest(key, spec) if self.official_digest else None


def is_text(column: pd.Series) -> bool:
    """Object columns, or pandas' own string dtype (the default for text from pandas 3 on)."""
    return pd.api.types.is_object_dtype(column) or pd.api.types.is_string_dtype(column)


def targets_of(key: str, spec: dict) -> list[str]:
    """The target column(s) of a tabular dataset entry (config key ``datasets.<key>.target``)."""
    target = spec.get("target")
    if target is None:
        raise DataSourceError(
            f"dataset {key!r}: config key 'datasets.{key}.target' is required for source {spec['source']!r}"
        )
    return [target] if isinstance(target, str) else list(target)
