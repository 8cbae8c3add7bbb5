"""Fault class permissions: outputs respect the umask, so that a results folder on a shared file system
can be read by the group (mkstemp creates 0600 files; every output used to keep that mode).

Every kind of file the workflow writes goes through io.atomic_path: text, JSON, .npz, parquet,
the raw-data cache (place_file), checkpoints (torch.save) and figures. Each is written under a
umask of 002 and of 022; then the files of real Snakemake runs are checked: the failing-run
fixture under umask 002, the session's tiny run under the test process's own umask.
"""

import contextlib
import os
import stat

import numpy as np
import pandas as pd
import pytest

from reliability_helpers import SHARED_UMASK, failing_run  # noqa: F401
from targetcodec import METHODS, Architecture, RunSpec, TrainingConfig, train_pack
from targetcodec.codec import initial_codec
from targetcodec.data.cache import place_file
from targetcodec.io import atomic_save_npz, atomic_write_json, atomic_write_text, current_umask, write_parquet

pytestmark = pytest.mark.fault("permissions")  # counted by tests/fault_classes.py


def writers(folder):
    def checkpoint(path):
        from conftest import make_split
        from targetcodec.pack import TrainingStopped, stop_after_epoch

        with stop_after_epoch(1), contextlib.suppress(TrainingStopped):  # a job killed after its first checkpoint
            train_pack(
                make_split(n=80),
                METHODS["least_squares"],
                [RunSpec(seed=0)],
                architecture=Architecture(width=4),
                training=TrainingConfig(batch_size=32, max_epochs=3),
                checkpoint=path,
                checkpoint_every=1,
            )

    def figure(path):
        import matplotlib.pyplot as plt

        from targetcodec.report.figures import save

        save(plt.figure(), str(path.with_suffix("")))

    return {
        "text": (folder / "table.md", lambda p: atomic_write_text(p, "x")),
        "json": (folder / "run.json", lambda p: atomic_write_json(p, {"a": 1})),
        "npz": (folder / "prepared.npz", lambda p: atomic_save_npz(p, a=np.zeros(2))),
        "parquet": (folder / "metrics.parquet", lambda p: write_parquet(pd.DataFrame({"a": [1]}), p)),
        "codec": (folder / "k3.npz", lambda p: initial_codec(np.linspace(0, 1, 20)[:, None], 3).save(p)),
        "cache": (folder / "cache" / "data.csv", lambda p: place_file(p, lambda tmp: tmp.write_text("a\n1\n"))),
        "checkpoint": (folder / "pack.ckpt", checkpoint),
        "figure": (folder / "figure.png", figure),
    }


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("umask", [0o002, 0o022], ids=["umask002", "umask022"])
@pytest.mark.parametrize("kind", ["text", "json", "npz", "parquet", "codec", "cache", "checkpoint", "figure"])
def test_every_kind_of_output_respects_the_umask(tmp_path, umask, kind):
    path, write = writers(tmp_path)[kind]
    previous = os.umask(umask)
    try:
        assert current_umask() == umask
        write(path)
    finally:
        os.umask(previous)
    assert mode(path) == 0o666 & ~umask, oct(mode(path))
    if kind == "cache":
        assert mode(path.with_name(path.name + ".sha256")) == 0o666 & ~umask


def results_files(results):
    return [p for p in results.rglob("*") if p.is_file()]


@pytest.mark.slow
def test_a_workflow_run_under_umask_002_leaves_group_writable_files(failing_run):  # noqa: F811
    _, results = failing_run
    files = results_files(results)
    assert len(files) > 10
    wrong = {str(p.relative_to(results)): oct(mode(p)) for p in files if mode(p) != 0o666 & ~SHARED_UMASK}
    assert not wrong  # tables, run files, metrics, prepared data, logs and benchmarks: 0664


@pytest.mark.slow
def test_the_tiny_run_files_have_the_umask_mode(tiny_run):
    _, results = tiny_run
    expected = 0o666 & ~current_umask()
    wrong = {str(p.relative_to(results)): oct(mode(p)) for p in results_files(results) if mode(p) != expected}
    assert not wrong
