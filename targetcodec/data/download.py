"""Filling the raw-data cache (the workflow's download rules, the only steps that use the network).

``ensure_cached`` makes one dataset's cache files present and sound: it fetches what is missing,
fetches again a corrupted download of ours (one with a sidecar record) and leaves verified files
alone. A file placed by hand is never changed, nor is anything written next to it (the folder may
be shared); its sha256 is logged, to be pinned with the config key ``datasets.<key>.sha256`` if it
should be checked from then on, and a corrupted one is reported.
"""

from __future__ import annotations

from pathlib import Path

from .cache import FileCheck, check_file, corrupted_error, require_writable, sidecar_of
from .errors import DataSourceError
from .network import DownloadPolicy
from .sources import get_source, raw_files


def ensure_cached(
    key: str, spec: dict, cache_dir: Path | str, policy: DownloadPolicy = DownloadPolicy(), log=print
) -> list[FileCheck]:
    """Fetch the dataset's cache files if missing or corrupted; return the state of each file."""
    cache_dir = Path(cache_dir)
    source = get_source(key, spec)
    if not source.needs_network:
        return []
    official = source.publisher_checksum(key, spec)
    files = source.cache_files(key, spec, cache_dir)
    checks = [check_file(path, key, spec, official) for path in files]
    for c in checks:
        if c.state == "corrupted" and not sidecar_of(c.path).exists():
            raise corrupted_error(key, c)  # placed by hand: reported, never overwritten
    to_fetch = [c for c in checks if not c.usable]
    for c in to_fetch:
        log(
            f"{key}: {c.path} is {c.state}" + (f" ({c.mismatch}); fetching it again" if c.mismatch else "; fetching it")
        )
    if to_fetch:
        require_writable(cache_dir, f"dataset {key!r}: put {', '.join(c.path.name for c in to_fetch)} there by hand")
        source.fetch(key, spec, cache_dir, policy, log)
        checks = [check_file(path, key, spec, official) for path in files]
        for c in checks:
            if c.state == "corrupted":  # e.g. the source now serves a file other than the one configured
                raise corrupted_error(key, c)
    for c in checks:
        if c.state == "unrecorded":
            log(
                f"{key}: {c.path} placed by hand, no checksum recorded (sha256 {c.sha256}); to have it checked "
                f"from now on, set config key 'datasets.{key}.sha256: {c.sha256}'"
            )
        else:
            log(f"{key}: {c.path} verified (sha256 {c.sha256} matches {c.recorded_by})")
    return checks


def download_one(config: dict, key: str, requested: str | Path, log=print) -> list[FileCheck]:
    """The download_dataset rule: ``ensure_cached`` for the dataset whose cache file is ``requested``."""
    spec = config["datasets"][key]
    expected = raw_files(key, spec, config["data_cache"])
    if Path(requested) not in expected:
        raise DataSourceError(
            f"dataset {key!r} (source {spec['source']!r}) is cached as "
            f"{', '.join(map(str, expected)) or 'nothing'}, not as {requested}"
        )
    return ensure_cached(key, spec, config["data_cache"], DownloadPolicy.from_config(config), log)


def ensure_all_cached(config: dict, keys: list[str], log=print) -> dict[str, list[FileCheck]]:
    """``ensure_cached`` for every dataset of ``keys`` that has a network source (``snakemake download``).

    Every dataset is tried; the errors are raised together at the end, so one unreachable host
    does not keep the others from being staged.
    """
    policy = DownloadPolicy.from_config(config)
    done, errors = {}, []
    for key in keys:
        try:
            done[key] = ensure_cached(key, config["datasets"][key], config["data_cache"], policy, log)
        except DataSourceError as e:
            log(f"FAILED {e}")
            errors.append(str(e))
    if errors:
        raise DataSourceError(f"{len(errors)} dataset(s) could not be cached:\n" + "\n".join(errors))
    return done


def download_config(config: dict, keys: list[str]) -> dict:
    """The part of the workflow's config that the download of ``keys`` reads."""
    return {
        "datasets": {key: config["datasets"][key] for key in keys},
        "data_cache": config["data_cache"],
        "download": config.get("download") or {},
    }


def main(argv: list[str] | None = None) -> None:
    """The download rules' command: ``python -m targetcodec.data.download REQUEST --log FILE``.

    REQUEST is JSON: ``{"config": download_config(...), "datasets": [keys], "output": path or null}``;
    with an output, ``download_one`` for the one dataset, else ``ensure_all_cached`` for all of them.
    """
    import argparse
    import json

    from ..joblog import job_log

    parser = argparse.ArgumentParser(prog="python -m targetcodec.data.download", description=main.__doc__)
    parser.add_argument("request", help="JSON: config, datasets, output")
    parser.add_argument("--log", required=True, help="the job's log file")
    args = parser.parse_args(argv)
    request = json.loads(args.request)
    with job_log(args.log) as log:
        if request.get("output"):
            (key,) = request["datasets"]
            download_one(request["config"], key, request["output"], log)
        else:
            ensure_all_cached(request["config"], request["datasets"], log)


if __name__ == "__main__":
    main()
