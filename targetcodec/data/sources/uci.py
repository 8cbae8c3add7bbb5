"""Source ``uci``: a dataset of the UCI Machine Learning Repository by its id (config key ``id``),
through ucimlrepo.

ucimlrepo has no cache and asks the UCI API on every call (``<API>?id=<id>``, then the data
CSV the answer points to), so the table it gives is stored as the dataset's cache file
(tables.store) and read from there.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..cache import offline_hint
from ..network import DownloadPolicy, with_retries
from . import tables
from .base import DataSourceError, Source, is_text


def api_url(dataset_id: int) -> str:
    import ucimlrepo.fetch

    return f"{ucimlrepo.fetch.API_BASE_URL}?id={dataset_id}"  # read at call time: a mirror may be set there


def fetch(key: str, spec: dict, cache_dir: Path, policy: DownloadPolicy, log=print) -> list[Path]:
    import ucimlrepo.fetch

    dataset_id = int(spec["id"])
    dest = tables.cache_files(key, spec, cache_dir)[0]
    what = f"dataset {key!r}: UCI id {dataset_id} ({api_url(dataset_id)})"

    def download():
        try:
            return ucimlrepo.fetch.fetch_ucirepo(id=dataset_id)
        except ucimlrepo.fetch.DatasetNotFoundError as e:
            if "csv" in str(e).lower():  # the data file could not be read: worth another attempt
                raise ConnectionError(str(e)) from e
            raise DataSourceError(
                f"{what}: UCI has no importable dataset with this id (config key 'datasets.{key}.id'): {e}"
            ) from e

    result = with_retries(download, what, policy, log, hint=offline_hint(dest, tables.offline_names(key, dest)))
    table = with_missing_values_as_nan(result.data.original, result.metadata)
    sha256 = tables.store(key, spec, table, dest, log)
    log(
        f"{key}: UCI {dataset_id} ({result.metadata.name}): {table.shape[0]} rows x {table.shape[1]} columns "
        f"-> {dest} (sha256 {sha256})"
    )
    return [dest]


def with_missing_values_as_nan(table: pd.DataFrame, metadata) -> pd.DataFrame:
    """UCI marks missing values with a symbol of the dataset's metadata (e.g. "?"); make them NaN so
    that preparation drops those rows instead of taking the column for a categorical one."""
    symbol = (metadata or {}).get("missing_values_symbol")
    if str((metadata or {}).get("has_missing_values", "no")).lower() != "yes" or not symbol:
        return table
    table = table.replace(symbol, float("nan"))
    for column in [c for c in table.columns if is_text(table[c])]:
        converted = pd.to_numeric(table[column], errors="coerce")
        if converted.notna().sum() == table[column].notna().sum():
            table[column] = converted
    return table


SOURCE = Source("uci", tables.load, fetch, tables.cache_files)
