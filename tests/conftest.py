import os
from pathlib import Path

import numpy as np
import pytest

from targetcodec.data import SplitData
from workflow_helpers import copy_workflow, snakemake

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("TARGETCODEC_SHARED_DATA", REPO.parent / "shared" / "data"))


def make_split(n=240, d=5, m=1, seed=0, images=False, noise=0.05):
    """A small nonlinear regression problem, targets scaled to [0, 1]."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(size=(n, 3, 8, 8)) if images else rng.uniform(size=(n, d))
    flat = X.reshape(n, -1)
    cols = [np.sin(3 * flat[:, 0]) + flat[:, 1] ** 2, np.cos(2 * flat[:, 2]) * flat[:, 3]][:m]
    y = np.stack(cols, axis=1) + noise * rng.normal(size=(n, m))
    y_min, y_max = y.min(0), y.max(0)
    y = (y - y_min) / (y_max - y_min)
    a, b = int(0.7 * n), int(0.85 * n)
    return SplitData(X[:a], y[:a], X[a:b], y[a:b], X[b:], y[b:], y_min, y_max)


@pytest.fixture
def shared_data():
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} not present (set TARGETCODEC_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """The tiny preset run locally once per session (the workflow tests and the SLURM comparison use it)."""
    workdir = copy_workflow(tmp_path_factory.mktemp("tiny"))
    snakemake(workdir, "--cores", "2", "--configfile", "presets/tiny.yaml")
    return workdir, workdir / "results" / "tiny"
