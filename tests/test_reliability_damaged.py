"""Fault class damaged_files: a damaged output names itself and says what to do.

Every reader of what the workflow writes (run JSON, prepared .npz, codec .npz, selected JSON,
sweep parquet, metrics parquet, training checkpoint) gets a real file of the tiny preset's run,
truncated, emptied or with a part missing: the error names the file and says "delete it and run
the workflow again" (the checkpoint: "delete it to start again"); and in a copy of that run,
Snakemake stops on a damaged run file with that message, and rebuilds it once it is deleted.
"""

import json
import shutil

import numpy as np
import pytest

from targetcodec import METHODS, Architecture, RunSpec, TrainingConfig, train_pack
from targetcodec.codec import Codec
from targetcodec.data import SplitData
from targetcodec.io import DamagedFile, read_parquet
from targetcodec.report.aggregate import load_runs, load_sweeps
from targetcodec.train.jobs import read_selected
from workflow_helpers import failed_job_logs, job_counts, snakemake

pytestmark = [
    pytest.mark.slow,  # real files of the tiny preset's run (the session's tiny_run)
    pytest.mark.fault("damaged_files"),  # counted by tests/fault_classes.py
]

READERS = {  # file of the tiny run -> how the workflow reads it
    "run JSON": ("runs/diabetes/least_squares/seed0.json", lambda p: load_runs([p])),
    "prepared npz": ("prepared/diabetes.npz", SplitData.load),
    "codec npz": ("codecs/diabetes/k3.npz", Codec.load),
    "selected JSON": ("selected/lr/diabetes/least_squares.json", lambda p: read_selected([p])),
    "sweep parquet": ("sweeps/lr/diabetes/least_squares.parquet", lambda p: load_sweeps([p])),
    "metrics parquet": ("metrics.parquet", read_parquet),
}


def truncated(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def emptied(path):
    path.write_bytes(b"")


def part_missing(path):
    """Well-formed, but without what the reader needs."""
    if path.suffix == ".json":
        record = json.loads(path.read_text())
        record.pop("metrics" if "metrics" in record else "value")
        path.write_text(json.dumps(record))
    elif path.suffix == ".npz":
        with np.load(path) as d:
            arrays = {name: d[name] for name in d.files[1:]}
        with open(path, "wb") as f:
            np.savez(f, **arrays)
    else:
        path.write_bytes(b"PAR1" + b"\0" * 64 + b"PAR1")


DAMAGE = {"truncated": truncated, "empty": emptied, "part-missing": part_missing}


@pytest.mark.parametrize("damage", DAMAGE)
@pytest.mark.parametrize("what", READERS)
def test_fault_damaged_output_names_its_file(tiny_run, tmp_path, what, damage):
    _, results = tiny_run
    relative, read = READERS[what]
    path = tmp_path / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(results / relative, path)
    read(path)  # the intact copy reads
    DAMAGE[damage](path)
    with pytest.raises(DamagedFile) as error:
        read(path)
    assert str(error.value).startswith(f"{path} is damaged or unreadable (")
    assert "delete it and run the workflow again: it rebuilds the file" in str(error.value)


@pytest.mark.parametrize("damage", ["truncated", "empty"])
def test_fault_damaged_checkpoint_names_its_file(tmp_path, damage):
    from conftest import make_split

    data = make_split(n=120)
    kwargs = dict(architecture=Architecture(width=8), training=TrainingConfig(batch_size=32, max_epochs=4))
    ckpt = tmp_path / "pack.ckpt"
    from targetcodec.pack import TrainingStopped, stop_after_epoch

    with stop_after_epoch(2), pytest.raises(TrainingStopped):
        train_pack(data, METHODS["least_squares"], [RunSpec(seed=0)], checkpoint=ckpt, checkpoint_every=2, **kwargs)
    DAMAGE[damage](ckpt)
    with pytest.raises(RuntimeError) as error:
        train_pack(data, METHODS["least_squares"], [RunSpec(seed=0)], checkpoint=ckpt, **kwargs)
    assert f"checkpoint {ckpt} cannot be read" in str(error.value) and "delete it to start again" in str(error.value)
    ckpt.unlink()  # what the message says: then training starts again
    assert len(train_pack(data, METHODS["least_squares"], [RunSpec(seed=0)], checkpoint=ckpt, **kwargs)) == 1


def test_fault_damaged_run_file_stops_the_workflow_and_is_rebuilt_once_deleted(tiny_run, tmp_path):
    workdir, _ = tiny_run
    copy = tmp_path / "copy"
    shutil.copytree(workdir, copy, symlinks=True)
    run_file = copy / "results/tiny/runs/diabetes/least_squares/seed0.json"
    intact = json.loads(run_file.read_text())
    truncated(run_file)
    # a copied workflow folder reruns nothing but the damaged pack (the workflow path is not a rerun trigger)
    args = ["results/tiny/metrics.parquet", "--cores", "2", "--configfile", "presets/tiny.yaml"]
    proc = snakemake(copy, *args, check=False)
    assert proc.returncode != 0
    log = (copy / "results/tiny/logs/aggregate.log").read_text()
    assert "results/tiny/runs/diabetes/least_squares/seed0.json is damaged or unreadable (JSONDecodeError" in log
    assert "delete it and run the workflow again" in log
    # what a failed test shows of it (tests/workflow_helpers.py): the failed job's own log
    assert log[-1000:] in failed_job_logs(copy, proc.stdout + proc.stderr)
    run_file.unlink()
    proc = snakemake(copy, *args)
    counts = job_counts(proc.stdout + proc.stderr)
    # that configuration's job (the learning-rate sweeps and packs of the configurations without k) and
    # the aggregation, nothing else
    assert counts == {"sweep_and_train_no_k": 1, "aggregate": 1}, counts
    rebuilt = json.loads(run_file.read_text())
    assert rebuilt["metrics"] == intact["metrics"]  # the same numbers: a run is reproducible
