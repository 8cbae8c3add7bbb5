"""The download rules in the real workflow, offline: prepare refuses a corrupted cache file, and
`snakemake download` stages a missing dataset and fetches the corrupted one again."""

import os

import numpy as np
import pandas as pd
import pytest

from data_helpers import fill_openml_cache
from targetcodec.data.download import ensure_cached
from workflow_helpers import copy_workflow, job_counts, snakemake

pytestmark = pytest.mark.slow

EXTRA = """
data_cache: cache
run_datasets: [first, second]
datasets:
  first: {code: F1, source: openml, id: 990001, target: y}
  second: {code: F2, source: openml, id: 990002, target: y}
"""


def small_table(seed):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"a": rng.uniform(size=300), "b": rng.uniform(size=300), "y": rng.uniform(size=300)})


def test_corrupted_cache_file_stops_prepare_and_snakemake_download_repairs_it(tmp_path):
    workdir = copy_workflow(tmp_path / "wf", git=False)
    (workdir / "extra.yaml").write_text(EXTRA)
    cache = workdir / "cache"
    # openml-python's own files: the real client finds them there and needs no network
    fill_openml_cache(cache, 990001, small_table(1), "y", "first")
    fill_openml_cache(cache, 990002, small_table(2), "y", "second")
    ensure_cached("first", {"source": "openml", "id": 990001, "target": "y"}, cache, log=lambda m: None)
    first = cache / "first.parquet"
    good = first.read_bytes()
    first.write_bytes(good[: len(good) // 2])  # e.g. the copy to the compute nodes broke off
    args = ["--cores", "1", "--configfile", "presets/tiny.yaml", "extra.yaml"]

    prepared = "results/tiny/prepared/first.npz"
    proc = snakemake(workdir, prepared, *args, check=False)
    assert proc.returncode != 0
    assert "cached file cache/first.parquet is corrupted or truncated" in proc.stderr
    assert "snakemake --cores 1 download" in proc.stderr and not (workdir / prepared).exists()

    proc = snakemake(workdir, "download", *args)
    assert "rule download_dataset" in proc.stderr and "wildcards: dataset=second" in proc.stderr
    pd.testing.assert_frame_equal(pd.read_parquet(cache / "second.parquet"), small_table(2))
    assert (cache / "second.parquet.sha256").exists()
    log = (workdir / "results" / "tiny" / "logs" / "download.log").read_text()
    assert "cache/first.parquet is corrupted" in log and "fetching it again" in log
    assert first.read_bytes() == good


def test_a_cache_file_older_than_the_workflow_code_is_not_downloaded_again(tmp_path):
    """The download rules are shell rules: a `script:` rule would be rerun (its output deleted first)
    whenever its script is newer than the file, e.g. after a fresh clone over a filled cache."""
    workdir = copy_workflow(tmp_path / "wf", git=False)
    (workdir / "extra.yaml").write_text(EXTRA)
    cache = workdir / "cache"
    fill_openml_cache(cache, 990001, small_table(1), "y", "first")
    ensure_cached("first", {"source": "openml", "id": 990001, "target": "y"}, cache, log=lambda m: None)
    placed = cache / "first.parquet"
    placed.with_name("first.parquet.sha256").unlink()  # as if placed by hand, with no Snakemake metadata
    old = 946684800  # 2000-01-01, older than every file of the workflow and the library
    os.utime(placed, (old, old))
    proc = snakemake(
        workdir,
        "-n",
        "results/tiny/prepared/first.npz",
        "--cores",
        "1",
        "--configfile",
        "presets/tiny.yaml",
        "extra.yaml",
    )
    assert job_counts(proc.stdout + proc.stderr) == {"prepare": 1}
    assert placed.stat().st_mtime == old
