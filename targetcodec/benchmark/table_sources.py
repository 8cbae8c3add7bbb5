"""What the network sources that deliver one table (openml, uci) share: their cache file, how a
downloaded table is stored, and how it is read back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .cache import read_table, table_cache_file, write_table
from .rawdata import DataSourceError, RawData, targets_of


def cache_files(key: str, spec: dict, cache_dir: Path) -> list[Path]:
    return [table_cache_file(key, cache_dir)]


def load(key: str, spec: dict, cache_dir: Path) -> RawData:
    path = table_cache_file(key, cache_dir)
    try:
        table = read_table(path, spec.get("separator", ","))
    except Exception as e:  # pandas and pyarrow raise many types for unreadable files
        raise DataSourceError(f"dataset {key!r}: cannot read cached file {path}: {e}. Delete it and run "
                              f"`snakemake download` on a machine with network, or put a good copy there.") from e
    where = f"UCI id {spec['id']}" if spec["source"] == "uci" else f"OpenML id {spec['id']}"
    return RawData(table=table, targets=targets_of(key, spec), description=f"{where}, cached as {path}")


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
                raise DataSourceError(f"dataset {key!r}: target column {target!r} (config key 'datasets.{key}.target') "
                                      f"is not in the downloaded table; columns are {list(table.columns)}")
            table[target] = np.exp(pd.to_numeric(table[target]))
        log(f"{key}: the source serves log({', '.join(targets_of(key, spec))}); stored exp() of it, the original units")
    return write_table(table, dest)
