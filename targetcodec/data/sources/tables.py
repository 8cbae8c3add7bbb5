"""What the network sources that deliver one table (openml, uci) share: their cache file, how a
downloaded table is stored, and how it is read back.

The cache file is ``<key>.csv`` where one was placed by hand, else ``<key>.parquet``, what a
download writes (parquet keeps the column types: a categorical column stays categorical, and is
dropped as such by preparation, even when its categories look like numbers).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..cache import STAGE_COMMAND, place_file
from .base import DataSourceError, RawData, targets_of

TABLE_SUFFIXES = (".csv", ".parquet")  # in order of preference when both exist


def table_cache_file(key: str, cache_dir: Path) -> Path:
    """``<key>.csv`` if present (e.g. placed by hand), else ``<key>.parquet`` (what a download writes)."""
    for suffix in TABLE_SUFFIXES:
        candidate = cache_dir / f"{key}{suffix}"
        if candidate.exists():
            return candidate
    return cache_dir / f"{key}.parquet"


class DuplicateColumns(DataSourceError):
    """A table names a column more than once."""


def read_table(path: Path, separator: str = ",") -> pd.DataFrame:
    """A CSV or parquet file (by its suffix), as the cache and the ``file`` source hold them.

    A header that names a column twice is refused (``DuplicateColumns``): pandas reads the second
    ``y`` of a CSV as ``y.1``, so a copy of the target would become a feature."""
    if path.suffix.lower() in (".parquet", ".pq"):
        table = pd.read_parquet(path)
        names = list(table.columns)
    else:
        table = pd.read_csv(path, sep=separator)
        # the header as written: the table's own column names are already renamed
        header = pd.read_csv(path, sep=separator, header=None, nrows=1, dtype=str, keep_default_na=False)
        names = [name for name in header.iloc[0] if name != ""] if len(header) else []
    twice = duplicated_names(names)
    if twice:
        raise DuplicateColumns(f"{path} names {twice} more than once; give every column a name of its own")
    return table


def duplicated_names(names) -> str:
    """``'y' (2 times), 'a' (3 times)`` for the names that occur more than once, in order; '' if none."""
    counts = pd.Series(list(names), dtype=object).value_counts(sort=False)
    return ", ".join(f"column {name!r} ({count} times)" for name, count in counts.items() if count > 1)


def write_table(table: pd.DataFrame, path: Path) -> str:
    """Write ``table`` to ``path`` (CSV or parquet by its suffix) atomically; return its sha256."""

    def write(tmp: Path) -> None:
        if path.suffix == ".parquet":
            table.to_parquet(tmp, index=False)
        else:
            table.to_csv(tmp, index=False)

    return place_file(path, write)


def cache_files(key: str, spec: dict, cache_dir: Path) -> list[Path]:
    return [table_cache_file(key, cache_dir)]


def load(key: str, spec: dict, cache_dir: Path) -> RawData:
    path = table_cache_file(key, cache_dir)
    try:
        table = read_table(path, spec.get("separator", ","))
    except DuplicateColumns as e:  # readable, but wrong as it is: downloading again would not help
        raise DataSourceError(f"dataset {key!r}: {e}") from None
    except Exception as e:  # pandas and pyarrow raise many types for unreadable files
        raise DataSourceError(
            f"dataset {key!r}: cannot read cached file {path}: {e}. Delete it and run "
            f"`{STAGE_COMMAND}` on a machine with network, or put a good copy there."
        ) from e
    where = f"UCI id {spec['id']}" if spec["source"] == "uci" else f"OpenML id {spec['id']}"
    return RawData(table=table, targets=targets_of(key, spec), description=f"{where}, cached as {path}")


def offline_names(key: str, dest: Path) -> str:
    return f"{key}.csv (or {dest.name})"


def store(key: str, spec: dict, table: pd.DataFrame, dest: Path, log=print) -> str:
    """Write a downloaded table to the cache in the target's original units; return its sha256.

    The cache holds what a user would put there by hand, so a source that serves the target
    already transformed (config key ``served_target_transform``: OpenML 44140 serves log(price))
    is converted back here, and ``target_transform`` is applied once, in preparation, whatever
    the file's origin.
    """
    if table.empty:
        raise DataSourceError(f"dataset {key!r}: the {spec['source']} source returned an empty table")
    if spec.get("served_target_transform") == "log":
        table = table.copy()
        for target in targets_of(key, spec):
            if target not in table.columns:
                raise DataSourceError(
                    f"dataset {key!r}: target column {target!r} (config key 'datasets.{key}.target') "
                    f"is not in the downloaded table; columns are {list(table.columns)}"
                )
            table[target] = np.exp(pd.to_numeric(table[target]))
        log(f"{key}: the source serves log({', '.join(targets_of(key, spec))}); stored exp() of it, the original units")
    return write_table(table, dest)
