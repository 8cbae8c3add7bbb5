"""What the reliability tests (docs/reliability.md) share: the workflow's config as Snakemake sees it, real
prepared data, and real training jobs in a temporary folder."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from snakemake.utils import update_config, validate

from targetcodec.data.prepare import prepare_dataset
from workflow_helpers import copy_workflow, snakemake

REPO = Path(__file__).resolve().parents[1]
SCHEMA = str(REPO / "workflow" / "schemas" / "config.schema.yaml")


def workflow_config(*layers: dict) -> dict:
    """config.yaml, then presets/tiny.yaml, then ``layers``, merged as --configfile merges them and
    completed with the schema's defaults, as the workflow's rules see it."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    for layer in (yaml.safe_load((REPO / "presets" / "tiny.yaml").read_text()), *layers):
        update_config(config, copy.deepcopy(layer))
    validate(config, schema=SCHEMA)
    return config


def prepared_diabetes(folder: Path, config: dict | None = None) -> Path:
    """scikit-learn's diabetes data through the real prepare step; returns the .npz path."""
    config = config or workflow_config()
    folder.mkdir(parents=True, exist_ok=True)
    npz = folder / "diabetes.npz"
    prepare_dataset(
        "diabetes",
        config["datasets"]["diabetes"],
        config["split"],
        folder,
        npz,
        folder / "diabetes.json",
        log=lambda message: None,
    )
    return npz


def with_arrays(src: Path, dest: Path, **changes) -> Path:
    """A copy of a prepared .npz with some arrays changed (``X_test=...``)."""
    with np.load(src) as d:
        arrays = {name: d[name] for name in d.files}
    arrays.update(changes)
    np.savez(dest, **arrays)
    return dest


FAILING = (
    "run_datasets: [diabetes]\nmethods: [least_squares, huber]\ntraining: {mlp: {lr: 1000.0}}\n"
    "sweeps: {lr: {enabled: false}, lambda_kl: {enabled: false}, k: {enabled: false}}\n"
)
FAILING_ARGS = ["--cores", "2", "--configfile", "presets/tiny.yaml", "failing.yaml"]
FAILING_TARGET = "results/tiny/tables/table3_mae.md"
SHARED_UMASK = 0o002  # a folder shared with a group


def snakemake_with_umask(umask: int, workdir: Path, *args, **kwargs):
    """Snakemake run with this umask (the child process inherits it)."""
    previous = os.umask(umask)
    try:
        return snakemake(workdir, *args, **kwargs)
    finally:
        os.umask(previous)


@pytest.fixture(scope="session")
def failing_run(tmp_path_factory):
    """Snakemake on a small config (diabetes, least squares and Huber, 2 seeds, no sweeps) where
    every reported run blows up (learning rate 1000), up to Table 3, under umask 002."""
    workdir = copy_workflow(tmp_path_factory.mktemp("failing"), git=False)
    (workdir / "failing.yaml").write_text(FAILING)
    snakemake_with_umask(SHARED_UMASK, workdir, FAILING_TARGET, *FAILING_ARGS)
    return workdir, workdir / "results" / "tiny"
