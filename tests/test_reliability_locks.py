"""Two runs writing one results folder: Snakemake locks a working directory, not the results folder,
so a job started from a second working directory resumed from the live checkpoint of the same job
started from the first. Each training job now holds its checkpoint's lock for its whole life; these
tests hold it from one real process and meet it from another."""

import os
import signal
import socket
import subprocess
import sys

import pytest

from targetcodec.locks import CheckpointInUse, checkpoint_lock, lock_file
from workflow_helpers import REPO, copy_workflow, snakemake

pytestmark = pytest.mark.fault("concurrent_runs")  # counted by tests/fault_classes.py

HOLD = """
import sys
from targetcodec.locks import checkpoint_lock
with checkpoint_lock(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()  # until the test closes our stdin
"""


@pytest.fixture
def holder():
    """Start a process that holds a checkpoint's lock until its stdin is closed."""
    started = []

    def start(checkpoint):
        process = subprocess.Popen(
            [sys.executable, "-c", HOLD, str(checkpoint)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=dict(os.environ, PYTHONPATH=str(REPO)),
        )
        started.append(process)
        assert process.stdout.readline() == "held\n"
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait()


def test_a_checkpoint_a_live_job_holds_is_refused_naming_it_and_the_holder(tmp_path, holder):
    checkpoint = tmp_path / "checkpoints" / "diabetes" / "seeds0-1.ckpt"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"the first job's live checkpoint")
    first = holder(checkpoint)
    with pytest.raises(CheckpointInUse) as error, checkpoint_lock(checkpoint):
        pytest.fail("a second holder")
    message = str(error.value)
    assert (
        f"checkpoint {checkpoint} is in use by another live job (pid {first.pid} on {socket.gethostname()}" in message
    )
    assert "config key 'results'" in message
    assert checkpoint.read_bytes() == b"the first job's live checkpoint"

    first.stdin.close()  # the first job ends: its lock goes with it, and the checkpoint is free
    assert first.wait() == 0 and not lock_file(checkpoint).exists()
    with checkpoint_lock(checkpoint):
        assert f"pid {os.getpid()} " in lock_file(checkpoint).read_text()
    assert not lock_file(checkpoint).exists()


def test_a_killed_job_leaves_no_lock_that_stops_its_rerun(tmp_path, holder):
    folder = tmp_path / "checkpoints" / "diabetes" / "k5"
    first = holder(folder)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert lock_file(folder).exists()  # left behind, but the kernel released the lock with the process
    with checkpoint_lock(folder):
        pass
    assert not lock_file(folder).exists()


@pytest.mark.slow  # runs Snakemake
def test_a_second_working_directory_cannot_take_a_live_jobs_checkpoint(tmp_path, holder):
    """Two working directories, one results folder: while the job of the first holds its checkpoint
    folder, the same job started by Snakemake from the second stops, saying which and who holds it."""
    results = tmp_path / "shared-results"
    first = holder(results / "checkpoints" / "diabetes" / "no_k")  # the first working directory's live job
    second = copy_workflow(tmp_path / "second", git=False)
    target = results / "runs" / "diabetes" / "least_squares" / "seed0.json"
    proc = snakemake(
        second,
        str(target),
        "--cores",
        "1",
        "--configfile",
        "presets/tiny.yaml",
        "--config",
        f"results={results}",
        check=False,
    )
    assert proc.returncode != 0
    log = (results / "logs" / "sweep_and_train" / "diabetes" / "no_k.log").read_text()
    assert f"is in use by another live job (pid {first.pid} on {socket.gethostname()}" in log, log
    assert not target.exists()
