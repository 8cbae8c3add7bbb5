"""The raw-data cache (config key ``data_cache``): file names, recorded checksums, verification.

Every dataset of a network source is one file named after its key in config.yaml (its source
says which: sources/tables.py, sources/medmnist.py). Downloads write ``<file>.sha256`` next to the file (``sha256sum`` format, so
``sha256sum -c`` works too). A file is checked against every checksum recorded for it: that
sidecar, the config key ``datasets.<key>.sha256`` and the publisher's own checksum (MedMNIST's
MD5). A file placed by hand with none of them is taken as it is, and its sha256 is reported
(nothing is ever written next to a file placed by hand: the folder may be shared).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..io import atomic_path
from .errors import DataSourceError

STAGE_COMMAND = "snakemake --cores 1 download"  # what fills the cache, for error messages
SIDECAR_SUFFIX = ".sha256"


class CorruptedCacheFile(DataSourceError):
    """A cached file does not match a checksum recorded for it (truncated, damaged or replaced)."""


def digest_of(path: Path, algorithm: str = "sha256") -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sidecar_of(path: Path) -> Path:
    return path.with_name(path.name + SIDECAR_SUFFIX)


def read_sidecar(path: Path) -> str | None:
    """The sha256 recorded next to ``path``, or None; an unreadable record counts as a mismatch."""
    sidecar = sidecar_of(path)
    if not sidecar.exists():
        return None
    fields = sidecar.read_text().split()
    return fields[0].lower() if fields else ""


def write_sidecar(path: Path, sha256: str) -> None:
    with atomic_path(sidecar_of(path)) as tmp:
        tmp.write_text(f"{sha256}  {path.name}\n")


def place_file(path: Path, write) -> str:
    """Let ``write(tmp)`` fill a temporary file, record its sha256, then move it into place.

    The sidecar is written first: a crash in between leaves a file that fails verification (and
    is fetched again), never an unverified file that looks complete.
    """
    with atomic_path(path) as tmp:
        write(tmp)
        sha256 = digest_of(tmp)
        write_sidecar(path, sha256)
    return sha256


@dataclass(frozen=True)
class RecordedDigest:
    algorithm: str  # "sha256" or "md5"
    value: str
    recorded_by: str  # where the value comes from, for messages


@dataclass
class FileCheck:
    """The state of one cached file: missing, verified, unrecorded (no checksum known) or corrupted."""

    path: Path
    state: str
    sha256: str | None = None
    mismatch: str = ""  # what disagrees, for corrupted files
    recorded_by: str = ""  # where the matching checksums come from, for verified files

    @property
    def usable(self) -> bool:
        return self.state in ("verified", "unrecorded")


def recorded_digests(path: Path, key: str, spec: dict, official: tuple[str, str] | None) -> list[RecordedDigest]:
    """Every checksum recorded for ``path``. A configured sha256 pins the file and replaces the
    publisher's checksum (so that a deliberately different version can be used)."""
    digests = []
    sidecar = read_sidecar(path)
    if sidecar is not None:
        digests.append(RecordedDigest("sha256", sidecar, f"the record {sidecar_of(path)}"))
    if spec.get("sha256"):
        digests.append(RecordedDigest("sha256", spec["sha256"].lower(), f"config key 'datasets.{key}.sha256'"))
    elif official is not None:
        algorithm, value = official
        digests.append(RecordedDigest(algorithm, value.lower(), f"the publisher's {algorithm.upper()} checksum"))
    return digests


def check_file(path: Path, key: str, spec: dict, official: tuple[str, str] | None = None) -> FileCheck:
    if not path.exists():
        return FileCheck(path, "missing")
    digests = recorded_digests(path, key, spec, official)
    computed = {"sha256": digest_of(path)}
    for d in digests:
        if d.algorithm not in computed:
            computed[d.algorithm] = digest_of(path, d.algorithm)
        if computed[d.algorithm] != d.value:
            return FileCheck(
                path,
                "corrupted",
                computed["sha256"],
                f"its {d.algorithm} is {computed[d.algorithm]}, but {d.recorded_by} says {d.value or '(empty)'}",
            )
    if not digests:
        return FileCheck(path, "unrecorded", computed["sha256"])
    return FileCheck(path, "verified", computed["sha256"], recorded_by=" and ".join(d.recorded_by for d in digests))


def corrupted_error(key: str, check: FileCheck) -> CorruptedCacheFile:
    if sidecar_of(check.path).exists():  # a download of ours: `snakemake download` replaces it
        what_to_do = (
            f"Run `{STAGE_COMMAND}` on a machine with network to fetch it again (it replaces "
            f"corrupted downloads), or delete it and its {SIDECAR_SUFFIX} record and put a good copy there"
        )
    else:  # placed by hand: never overwritten
        what_to_do = (
            f"It was placed by hand, so the workflow leaves it alone: replace it with a good copy, or "
            f"delete it to have `{STAGE_COMMAND}` fetch it"
        )
    return CorruptedCacheFile(
        f"dataset {key!r}: cached file {check.path} is corrupted or truncated: {check.mismatch}. {what_to_do}. "
        f"If the file changed on purpose, update config key 'datasets.{key}.sha256' (or delete its {SIDECAR_SUFFIX} record)."
    )


def verified_files(
    key: str, spec: dict, paths: list[Path], official: tuple[str, str] | None = None, missing_ok: bool = False
) -> list[FileCheck]:
    """Check the files a dataset is read from; raise a clear error for a missing or corrupted one
    (``missing_ok``: leave missing files to the loader, which names its own config key)."""
    checks = []
    for path in paths:
        check = check_file(path, key, spec, official)
        if check.state == "missing" and missing_ok:
            continue
        if check.state == "missing":
            raise DataSourceError(
                f"dataset {key!r}: {path} does not exist. Run `{STAGE_COMMAND}` on a machine with network "
                f"(source {spec.get('source')!r}), or put the file there by hand (config key 'data_cache')."
            )
        if check.state == "corrupted":
            raise corrupted_error(key, check)
        checks.append(check)
    return checks


def offline_hint(dest: Path, names: str = "") -> str:
    """What to do when a download is impossible, for the end of its error message."""
    names = names or dest.name
    return (
        f"Without network, run `{STAGE_COMMAND}` where there is one, or put {names} in the data "
        f"cache {dest.parent} (config key 'data_cache')."
    )


def require_writable(folder: Path, what_to_do: str) -> None:
    """Fail clearly, before any download, if files cannot be created in ``folder`` (os.access
    cannot tell: it says yes to root on a read-only file system)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test.", suffix=".part", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise DataSourceError(
            f"cannot write to the data cache {folder} (config key 'data_cache'): {e}; {what_to_do}"
        ) from e
