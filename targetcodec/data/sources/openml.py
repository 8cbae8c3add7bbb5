"""Source ``openml``: a dataset of OpenML by its id (config key ``id``), through openml-python.

openml-python keeps its own files under ``<data_cache>/openml`` (its usual layout,
``org/openml/www/datasets/<id>/``), and never downloads a file it finds there, so an existing
OpenML cache copied there works offline. The table it gives is then stored as the dataset's
cache file (tables.store) and read from there.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from ..cache import offline_hint
from ..network import TRANSIENT_ERRORS, DownloadPolicy, with_retries
from . import tables
from .base import DataSourceError, Source


def client_cache_dir(cache_dir: Path) -> Path:
    return Path(cache_dir) / "openml"


@contextlib.contextmanager
def openml_client(cache_dir: Path):
    """openml-python with its cache in our raw-data cache and without retries of its own (ours
    apply); its global settings are restored afterwards."""
    import openml

    previous = (openml.config.get_config_as_dict()["cachedir"], openml.config.connection_n_retries)
    openml.config.set_root_cache_directory(str(client_cache_dir(cache_dir)))
    openml.config.connection_n_retries = 1
    try:
        yield openml
    finally:
        openml.config.set_root_cache_directory(str(previous[0]))
        openml.config.connection_n_retries = previous[1]


def remove_pickled_copies(cache_dir: Path, dataset_id: int, log=print) -> list[Path]:
    """Delete openml-python's pickled copies of a dataset (``*.pkl.py3``) from its cache folder.

    openml-python unpickles such a file when it finds one, and unpickling can run any code: a
    copied-in OpenML cache must not be able to do that. The copies are openml-python's own,
    derived from the dataset's parquet or ARFF file, and are written again from it.
    """
    folder = client_cache_dir(cache_dir) / "org" / "openml" / "www" / "datasets" / str(dataset_id)
    removed = sorted(folder.glob("*.pkl*")) if folder.is_dir() else []
    for path in removed:
        path.unlink()
        log(
            f"removed {path}: openml-python would unpickle it (which can run code); it is rebuilt from the dataset's file"
        )
    return removed


def dataset_url(dataset_id: int) -> str:
    return f"https://www.openml.org/d/{dataset_id}"


def fetch(key: str, spec: dict, cache_dir: Path, policy: DownloadPolicy, log=print) -> list[Path]:
    import openml.exceptions as oe
    import urllib3

    dataset_id = int(spec["id"])
    dest = tables.cache_files(key, spec, cache_dir)[0]
    what = f"dataset {key!r}: OpenML id {dataset_id} ({dataset_url(dataset_id)})"

    def download():
        remove_pickled_copies(cache_dir, dataset_id, log)
        with openml_client(cache_dir) as openml:
            try:
                dataset = openml.datasets.get_dataset(
                    dataset_id, download_data=True, download_qualities=False, download_features_meta_data=False
                )
                table, *_ = dataset.get_data(dataset_format="dataframe")
            except (oe.OpenMLServerNoResult, oe.OpenMLPrivateDatasetError, oe.OpenMLNotAuthorizedError) as e:
                raise DataSourceError(
                    f"{what}: OpenML has no public dataset with this id (config key 'datasets.{key}.id'): {e}"
                ) from e
        return table, dataset.name

    transient = TRANSIENT_ERRORS + (oe.OpenMLServerError, urllib3.exceptions.HTTPError)
    table, name = with_retries(
        download, what, policy, log, transient, hint=offline_hint(dest, tables.offline_names(key, dest))
    )
    sha256 = tables.store(key, spec, table, dest, log)
    log(
        f"{key}: OpenML {dataset_id} ({name}): {table.shape[0]} rows x {table.shape[1]} columns -> {dest} (sha256 {sha256})"
    )
    return [dest]


SOURCE = Source("openml", tables.load, fetch, tables.cache_files)
