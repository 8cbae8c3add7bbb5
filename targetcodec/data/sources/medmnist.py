"""Source ``medmnist``: a MedMNIST dataset by its flag (config keys ``flag`` and ``size``), with
its official train/val/test split, read by medmnist's own reader.

The cache file is ``<key>.npz``, the file MedMNIST publishes (``retinamnist.npz`` for the
paper's RetinaMNIST at 28 px), checked against the MD5 medmnist records for it. The download is
ours (URL and MD5 from medmnist's INFO), because medmnist's downloader needs torchvision.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import numpy as np

from ..cache import offline_hint, place_file
from ..network import DownloadPolicy, download_url, with_retries
from .base import DataSourceError, RawData, Source

SPLITS = ("train", "val", "test")
REGRESSION_TASKS = ("ordinal-regression", "regression")


def info_of(key: str, spec: dict) -> tuple[dict, str]:
    """MedMNIST's record of the dataset (URL, MD5, task, sizes) and the size suffix of its file."""
    from medmnist.info import INFO

    flag = spec["flag"]
    if flag not in INFO:
        raise DataSourceError(
            f"dataset {key!r}: MedMNIST has no flag {flag!r} (config key 'datasets.{key}.flag'); "
            f"known: {', '.join(sorted(INFO))}"
        )
    info = INFO[flag]
    if info["task"] not in REGRESSION_TASKS:
        raise DataSourceError(f"dataset {key!r}: MedMNIST {flag!r} is a {info['task']} task, not a regression one")
    size = int(spec.get("size", 28))
    suffix = "" if size == 28 else f"_{size}"
    if f"url{suffix}" not in info:
        raise DataSourceError(
            f"dataset {key!r}: MedMNIST {flag!r} has no {size} px version (config key 'datasets.{key}.size')"
        )
    return info, suffix


def cache_files(key: str, spec: dict, cache_dir: Path) -> list[Path]:
    return [Path(cache_dir) / f"{key}.npz"]


def official_digest(key: str, spec: dict) -> tuple[str, str]:
    info, suffix = info_of(key, spec)
    return "md5", info[f"MD5{suffix}"]


def fetch(key: str, spec: dict, cache_dir: Path, policy: DownloadPolicy, log=print) -> list[Path]:
    info, suffix = info_of(key, spec)
    url, md5 = info[f"url{suffix}"], info[f"MD5{suffix}"]
    dest = cache_files(key, spec, cache_dir)[0]
    what = f"dataset {key!r}: MedMNIST {spec['flag']!r} ({url})"
    sha256 = with_retries(
        lambda: place_file(dest, lambda tmp: download_url(url, tmp, policy.timeout_seconds, md5)),
        what,
        policy,
        log,
        hint=offline_hint(dest),
    )
    log(f"{key}: MedMNIST {spec['flag']} -> {dest} (sha256 {sha256})")
    return [dest]


@contextlib.contextmanager
def reader_root(path: Path, expected_name: str):
    """A folder where medmnist's reader finds ``path`` under the name it expects."""
    if path.name == expected_name:
        yield path.parent
        return
    with tempfile.TemporaryDirectory() as folder:
        os.symlink(path.resolve(), Path(folder) / expected_name)
        yield Path(folder)


def load(key: str, spec: dict, cache_dir: Path) -> RawData:
    import medmnist

    info, suffix = info_of(key, spec)
    path = cache_files(key, spec, cache_dir)[0]
    reader = getattr(medmnist, info["python_class"])
    images, targets = {}, {}
    with reader_root(path, f"{spec['flag']}{suffix}.npz") as root:
        for split in SPLITS:
            try:
                data = reader(split=split, root=str(root), size=int(spec.get("size", 28)))
                n = len(data)  # medmnist checks the count against its record
                images[split] = np.asarray(data.imgs)
                targets[split] = np.asarray(data.labels).reshape(n, -1)
            except AssertionError as e:
                raise DataSourceError(
                    f"dataset {key!r}: {path} has {len(data.imgs)} {split} images, MedMNIST "
                    f"records {info['n_samples'][split]}"
                ) from e
            except Exception as e:  # a damaged npz raises zipfile, pickle or key errors
                raise DataSourceError(
                    f"dataset {key!r}: cannot read {split} split of {path} with medmnist: {type(e).__name__}: {e}"
                ) from e
    return RawData(
        images=images,
        image_targets=targets,
        targets=[f"{spec['flag']} label"],
        description=f"MedMNIST {spec['flag']} ({int(spec.get('size', 28))} px, official split), cached as {path}",
    )


SOURCE = Source("medmnist", load, fetch, cache_files, official_digest)
