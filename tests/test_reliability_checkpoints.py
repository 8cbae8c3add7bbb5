"""Fault classes untrusted_files and interrupted_jobs: nothing a user hands the workflow can run code, and a killed job resumes.

Real malicious files, each with a payload that writes a marker file when unpickled, placed where
the workflow reads: the training checkpoint of a real job, the prepared .npz, the codec .npz, the
MedMNIST cache file, and openml-python's pickled copy in the OpenML cache. Each is refused (or,
for openml-python's copy, removed before openml-python could read it) and its payload never runs.
And a real training job killed with SIGKILL mid-training resumes from its checkpoint (loaded with
``weights_only=True``) to the same numbers.
"""

import hashlib
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch

from data_helpers import fill_openml_cache, no_network  # noqa: F401
from reliability_helpers import REPO, prepared_diabetes, workflow_config
from targetcodec.codec import Codec
from targetcodec.data import SplitData
from targetcodec.data.download import ensure_cached
from targetcodec.data.network import DownloadPolicy
from targetcodec.data.prepare import prepare_dataset
from targetcodec.data.sources import DataSourceError
from targetcodec.io import DamagedFile
from targetcodec.train import jobs
from targetcodec.train.jobs import (
    ConfigurationFiles,
    JobContext,
    sweep_and_train,
    sweep_and_train_group,
    train_configuration,
)
from targetcodec.train.settings import Runtime, TrainingJob, job_params


class Payload:
    """Unpickling this writes ``marker``: what a malicious file would do, harmlessly."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('payload ran')",))


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    return prepared_diabetes(tmp_path_factory.mktemp("prepared"))


def job(folder, data, checkpoint, seeds=(0, 1), **overrides):
    config = workflow_config({"sweeps": {"lr": {"enabled": False}}}, overrides)
    outputs = [str(folder / "runs" / f"seed{s}.json") for s in seeds]
    lines = []
    job = TrainingJob.from_params(job_params(config, "diabetes", "least_squares"))
    context = JobContext.load(data, runtime=Runtime(workflow_dir=str(folder)), log=lines.append)
    train_configuration(context, job, list(seeds), outputs, checkpoint=str(checkpoint))
    return outputs, lines


@pytest.mark.fault("untrusted_files")
def test_fault_malicious_checkpoint_is_refused_and_its_payload_never_runs(prepared, tmp_path):
    marker = tmp_path / "marker"
    checkpoint = tmp_path / "checkpoints" / "seeds0-1.ckpt"
    checkpoint.parent.mkdir()
    torch.save({"fingerprint": "anything", "params": [Payload(marker)]}, checkpoint)
    with pytest.raises(RuntimeError) as error:
        job(tmp_path, prepared, checkpoint)
    assert f"checkpoint {checkpoint} cannot be read as a checkpoint of this workflow" in str(error.value)
    assert "nothing in it was run" in str(error.value) and "delete it to start again" in str(error.value)
    assert not marker.exists() and not (tmp_path / "runs").exists()
    # the payload is real: an unrestricted load runs it (the old weights_only=False)
    torch.load(checkpoint, weights_only=False)
    assert marker.read_text() == "payload ran"
    marker.unlink()
    checkpoint.unlink()  # what the message says: then the job trains from the start
    outputs, _ = job(tmp_path, prepared, checkpoint)
    assert all(os.path.exists(p) for p in outputs) and not marker.exists()


@pytest.mark.fault("interrupted_jobs")
def test_fault_checkpoint_of_other_settings_is_refused_by_its_fingerprint(prepared, tmp_path):
    checkpoint = tmp_path / "run.ckpt"
    config = workflow_config(
        {"sweeps": {"lr": {"enabled": False}}, "training": {"mlp": {"max_epochs": 30, "patience": 30}}}
    )
    # a genuine checkpoint, of a pack of other seeds: stop a job after epoch 10
    from targetcodec import METHODS, train_pack
    from targetcodec.pack import TrainingStopped, stop_after_epoch

    data = SplitData.load(prepared)
    other = TrainingJob.from_params(job_params(config, "diabetes", "least_squares"))
    with stop_after_epoch(10), pytest.raises(TrainingStopped):
        train_pack(
            data,
            METHODS["least_squares"],
            other.run_specs([5, 6]),
            architecture=other.architecture,
            training=other.training,
            checkpoint=checkpoint,
            checkpoint_every=10,
        )
    assert torch.load(checkpoint, weights_only=True)["epoch"] == 10  # plain tensors and containers only
    with pytest.raises(RuntimeError, match=f"checkpoint {checkpoint} belongs to another configuration; delete it"):
        job(tmp_path, prepared, checkpoint, training={"mlp": {"max_epochs": 30, "patience": 30}})


@pytest.mark.fault("interrupted_jobs")
def test_fault_a_pack_resumes_with_other_logging_and_evaluation_chunks(prepared, tmp_path):
    """How a pack runs (progress lines, evaluation chunks, compilation) is not what it computes: a job
    started again with other such settings resumes from its checkpoint, to the same numbers."""
    from dataclasses import replace

    from targetcodec import METHODS, train_pack
    from targetcodec.pack import TrainingStopped, stop_after_epoch

    config = workflow_config(
        {"sweeps": {"lr": {"enabled": False}}, "training": {"mlp": {"max_epochs": 20, "patience": 20}}}
    )
    job = TrainingJob.from_params(job_params(config, "diabetes", "least_squares"))
    data, runs = SplitData.load(prepared), job.run_specs([0, 1])
    kwargs = dict(architecture=job.architecture, checkpoint_every=10)
    straight = train_pack(data, METHODS["least_squares"], runs, training=job.training, **kwargs)
    checkpoint = tmp_path / "pack.ckpt"
    with stop_after_epoch(10), pytest.raises(TrainingStopped):
        train_pack(data, METHODS["least_squares"], runs, training=job.training, checkpoint=checkpoint, **kwargs)
    other = replace(job.training, log_every=3, eval_batch_size=7)
    lines = []
    resumed = train_pack(
        data, METHODS["least_squares"], runs, training=other, checkpoint=checkpoint, log=lines.append, **kwargs
    )
    assert any("resumed from checkpoint" in line and "after epoch 10" in line for line in lines), lines
    for a, b in zip(straight, resumed):
        assert a.val_mae_history == pytest.approx(b.val_mae_history, rel=1e-5)
        assert a.metrics == pytest.approx(b.metrics, rel=1e-5)


def sweep_and_train_job(folder, data, grid=(1e-2, 3e-2), log=None):
    """A real sweep_and_train job (least squares on diabetes, the tiny preset's training)."""
    config = workflow_config()
    job = TrainingJob.from_params(job_params(config, "diabetes", "least_squares"))
    outputs = [str(folder / "runs" / f"seed{s}.json") for s in (0, 1)]
    context = JobContext.load(
        data, runtime=Runtime(workflow_dir=str(folder)), log=(log if log is not None else []).append
    )
    files = ConfigurationFiles(outputs, folder / "sweep.parquet", folder / "selected.json")
    sweep_and_train(context, job, list(grid), [1000, 1001], [0, 1], files, folder / "checkpoints")
    return outputs


@pytest.mark.fault("interrupted_jobs")
def test_fault_a_job_killed_after_its_sweep_does_not_sweep_again(prepared, tmp_path, monkeypatch):
    """sweep_and_train keeps its finished sweep beside its checkpoints until the reported runs are
    written: killed while training them, it starts again from them, with the uninterrupted numbers;
    a kept sweep of other settings is refused by name."""
    uninterrupted = sweep_and_train_job(tmp_path / "uninterrupted", prepared)

    class Killed(BaseException):
        pass

    def killed(*args, **kwargs):
        raise Killed

    folder = tmp_path / "killed"
    with monkeypatch.context() as patch:
        patch.setattr(jobs, "train_configuration", killed)
        with pytest.raises(Killed):
            sweep_and_train_job(folder, prepared)
    assert sorted(p.name for p in (folder / "checkpoints").iterdir()) == ["lr_sweep.json", "lr_sweep.parquet"]
    for output in ("sweep.parquet", "selected.json"):  # what Snakemake does with a failed job's outputs
        (folder / output).unlink()

    with pytest.raises(
        RuntimeError, match=f"finished sweep {folder / 'checkpoints' / 'lr_sweep.json'} belongs to other"
    ):
        sweep_and_train_job(folder, prepared, grid=(1e-3, 1e-2))
    lines = []
    resumed = sweep_and_train_job(folder, prepared, log=lines)
    assert any("learning-rate sweep finished before this job was stopped" in line for line in lines)
    assert not any("sweep of lr" in line for line in lines), lines
    for a, b in zip(uninterrupted, resumed):
        a, b = json.loads(open(a).read()), json.loads(open(b).read())
        assert a["metrics"] == b["metrics"] and a["hyperparameters"] == b["hyperparameters"]
    assert (
        pd.read_parquet(folder / "sweep.parquet")
        .drop(columns="wall_seconds")
        .equals(pd.read_parquet(tmp_path / "uninterrupted" / "sweep.parquet").drop(columns="wall_seconds"))
    )
    assert not (folder / "checkpoints").exists()


def group_job(folder, data, log=None):
    """A real sweep_and_train_no_k job: least squares then Huber on diabetes (sweeps.lr.job_per: k)."""
    config = workflow_config()
    labels = ["least_squares", "huber"]
    group = [TrainingJob.from_params(job_params(config, "diabetes", label)) for label in labels]
    outputs = [
        ConfigurationFiles(
            [str(folder / "runs" / label / f"seed{s}.json") for s in (0, 1)],
            str(folder / "sweeps" / f"{label}.parquet"),
            str(folder / "selected" / f"{label}.json"),
        )
        for label in labels
    ]
    context = JobContext.load(
        data, runtime=Runtime(workflow_dir=str(folder)), log=(log if log is not None else []).append
    )
    sweep_and_train_group(context, group, [1e-2, 3e-2], [1000, 1001], [0, 1], outputs, folder / "checkpoints")
    return outputs


@pytest.mark.fault("interrupted_jobs")
def test_fault_a_job_of_several_configurations_killed_half_way_trains_only_what_it_had_not_finished(
    prepared, tmp_path, monkeypatch
):
    """A job of every configuration with one k keeps each finished configuration until the whole job
    has finished: killed during its second configuration (and its outputs deleted, as Snakemake does),
    it takes the first from the kept copy without training it, trains the second, and writes the
    uninterrupted job's numbers; nothing is kept once it has finished."""
    uninterrupted = group_job(tmp_path / "uninterrupted", prepared)

    class Killed(BaseException):
        pass

    real = jobs.sweep_and_train

    def killed_in_huber(context, job, *args, **kwargs):
        if job.configuration.label == "huber":
            raise Killed
        return real(context, job, *args, **kwargs)

    folder = tmp_path / "killed"
    with monkeypatch.context() as patch:
        patch.setattr(jobs, "sweep_and_train", killed_in_huber)
        with pytest.raises(Killed):
            group_job(folder, prepared)
    for sub in ("runs", "sweeps", "selected"):  # what Snakemake does with the outputs of a failed job
        shutil.rmtree(folder / sub)
    lines = []
    resumed = group_job(folder, prepared, log=lines)
    assert any("least_squares: finished before this job was stopped" in line for line in lines), lines
    assert sum("sweep of lr" in line for line in lines) == 1  # Huber's only
    for a, b in zip(uninterrupted, resumed):
        for x, y in zip(a.runs, b.runs):
            x, y = json.loads(open(x).read()), json.loads(open(y).read())
            assert x["metrics"] == y["metrics"] and x["hyperparameters"] == y["hyperparameters"]
        assert json.loads(open(a.selected).read()) == json.loads(open(b.selected).read())
        assert (
            pd.read_parquet(a.sweep)
            .drop(columns="wall_seconds")
            .equals(pd.read_parquet(b.sweep).drop(columns="wall_seconds"))
        )
    assert not (folder / "checkpoints").exists()


def malicious_npz(path, names, marker):
    """An .npz whose first array is a pickled object holding the payload."""
    arrays = {name: np.zeros(3) for name in names}
    arrays[names[0]] = np.array([Payload(marker)], dtype=object)
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


@pytest.mark.fault("untrusted_files")
@pytest.mark.parametrize(
    "reader, names",
    [
        (SplitData.load, list(SplitData.__dataclass_fields__)),
        (Codec.load, ["w_lin", "w_bias", "mu", "centroids", "spacing"]),
    ],
    ids=["prepared-npz", "codec-npz"],
)
def test_fault_pickled_array_in_an_npz_is_refused(tmp_path, reader, names):
    marker = tmp_path / "marker"
    path = malicious_npz(tmp_path / "file.npz", names, marker)
    with pytest.raises(DamagedFile, match="Object arrays cannot be loaded when allow_pickle=False"):
        reader(path)
    assert not marker.exists()


@pytest.mark.fault("untrusted_files")
def test_fault_pickled_array_in_a_medmnist_cache_file_is_refused(tmp_path):
    marker = tmp_path / "marker"
    cache = tmp_path / "cache"
    cache.mkdir()
    names = [f"{split}_{kind}" for split in ("train", "val", "test") for kind in ("images", "labels")]
    path = malicious_npz(cache / "retinamnist.npz", names, marker)
    spec = {"source": "medmnist", "flag": "retinamnist", "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    out = tmp_path / "prepared"
    with pytest.raises(DataSourceError, match=f"cannot read train split of {path}"):
        prepare_dataset(
            "retinamnist",
            spec,
            {"train": 0.8, "val": 0.1, "test": 0.1, "seed": 0},
            cache,
            out / "r.npz",
            out / "r.json",
            log=lambda m: None,
        )
    assert not marker.exists() and not out.exists()


@pytest.mark.fault("untrusted_files")
def test_fault_pickle_in_a_copied_openml_cache_is_removed_unread(tmp_path, no_network):  # noqa: F811
    """openml-python unpickles dataset_<id>.pkl.py3 when it finds one; a copied-in OpenML cache
    holding a malicious one: the download step removes it before openml-python looks."""
    marker = tmp_path / "marker"
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"a": rng.uniform(size=60), "b": rng.uniform(size=60), "goal": rng.uniform(size=60)})
    cache = tmp_path / "cache"
    folder = fill_openml_cache(cache, 44137, table, "goal", "Ailerons")
    pickled = folder / "dataset_44137.pkl.py3"
    with open(pickled, "wb") as f:
        pickle.dump((Payload(marker), [False] * 3, list(table.columns)), f)
    lines = []
    ensure_cached(
        "ailerons",
        {"source": "openml", "id": 44137, "target": "goal"},
        cache,
        DownloadPolicy(attempts=1, backoff_seconds=0, timeout_seconds=10),
        log=lines.append,
    )
    assert not marker.exists()
    assert any(f"removed {pickled}: openml-python would unpickle it" in line for line in lines), lines
    pd.testing.assert_frame_equal(pd.read_parquet(cache / "ailerons.parquet"), table)


KILLED_JOB = """
import sys
sys.path.insert(0, {tests!r})
from reliability_helpers import workflow_config
from targetcodec.joblog import set_threads
from targetcodec.train import jobs
from targetcodec.train.jobs import JobContext, train_configuration
from targetcodec.train.settings import Runtime, TrainingJob, job_params
set_threads(1)
config = workflow_config({{"sweeps": {{"lr": {{"enabled": False}}}}, "training": {{"mlp": {{"max_epochs": 60, "patience": 60}}}}}})
context = JobContext.load({data!r}, runtime=Runtime(workflow_dir={folder!r}), log=lambda m: print(m, flush=True))
train_configuration(context, TrainingJob.from_params(job_params(config, "diabetes", "huber")), [0, 1], {outputs!r},
                    checkpoint={checkpoint!r})
"""


@pytest.mark.fault("interrupted_jobs")
def test_fault_training_job_killed_mid_training_resumes_to_the_same_numbers(prepared, tmp_path):
    def script(folder):
        outputs = [str(folder / f"seed{s}.json") for s in (0, 1)]
        code = KILLED_JOB.format(
            tests=str(REPO / "tests"),
            data=str(prepared),
            outputs=outputs,
            checkpoint=str(folder / "job.ckpt"),
            folder=str(folder),
        )
        return [sys.executable, "-c", code], outputs

    command, straight = script(tmp_path / "straight")
    subprocess.run(command, check=True, capture_output=True, cwd=tmp_path)
    command, resumed = script(tmp_path / "killed")
    checkpoint = tmp_path / "killed" / "job.ckpt"
    job_process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp_path)
    deadline = time.time() + 300
    while not checkpoint.exists() and job_process.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert job_process.poll() is None, "the job ended before its first checkpoint: make it longer"
    os.kill(job_process.pid, signal.SIGKILL)  # a hard kill: no clean-up runs
    job_process.wait()
    assert checkpoint.exists() and not any(os.path.exists(p) for p in resumed)
    again = subprocess.run(command, check=True, capture_output=True, text=True, cwd=tmp_path)
    assert "resumed from checkpoint" in again.stdout
    assert not checkpoint.exists()
    for a, b in zip(straight, resumed):
        first, second = json.loads(open(a).read()), json.loads(open(b).read())
        assert first["metrics"] == second["metrics"] and first["val_mae_history"] == second["val_mae_history"]
