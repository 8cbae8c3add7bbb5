"""The local GPU pool: each training job on a machine with several GPUs gets GPUs of its own.
Tested on CPUs with made-up GPU names in CUDA_VISIBLE_DEVICES."""

import contextlib
import os
import select
import signal
import subprocess
import sys
import time

import pytest

from targetcodec.train.devices import _try_lock, claimed_gpus, gpu_count_for_profile, visible_gpus
from workflow_helpers import REPO

# A job that claims one GPU, says which, and holds it until killed or told to stop (a line on stdin).
HOLDER = """
import os, sys
from targetcodec.train.devices import claimed_gpus
with claimed_gpus(1, log=lambda m: None, lock_dir=sys.argv[1], poll_seconds=0.05):
    print(os.environ["CUDA_VISIBLE_DEVICES"], flush=True)
    sys.stdin.readline()
"""


@pytest.mark.parametrize(
    "value, gpus",
    [
        ("0,1,2", ["0", "1", "2"]),
        ("3", ["3"]),
        ("GPU-8a1b,GPU-77ff", ["GPU-8a1b", "GPU-77ff"]),
        ("", []),
        ("-1", []),
        ("2,-1,3", ["2"]),  # CUDA stops at the first invalid entry
    ],
)
def test_visible_gpus_follow_cuda_visible_devices(value, gpus):
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": value}) == gpus


def test_a_job_that_sees_several_gpus_gets_one_of_its_own(tmp_path):
    env = {"CUDA_VISIBLE_DEVICES": "0,1"}
    lines = []
    with claimed_gpus(1, log=lines.append, lock_dir=tmp_path, environ=env) as first:
        assert env["CUDA_VISIBLE_DEVICES"] == first[0] and first[0] in ("0", "1")
        other = {"CUDA_VISIBLE_DEVICES": "0,1"}
        with claimed_gpus(1, log=lines.append, lock_dir=tmp_path, environ=other) as second:
            assert second != first and other["CUDA_VISIBLE_DEVICES"] == second[0]
    assert env == {"CUDA_VISIBLE_DEVICES": "0,1"}  # restored after the block
    assert any("GPU pool: this job uses GPU" in line for line in lines)


def test_a_job_given_its_gpus_claims_nothing(tmp_path):
    """Under SLURM the job sees exactly the GPUs it was given; a job that asked for none keeps its view."""
    for env, requested in (
        ({"CUDA_VISIBLE_DEVICES": "1"}, 1),
        ({"CUDA_VISIBLE_DEVICES": "0,1"}, 2),
        ({"CUDA_VISIBLE_DEVICES": "0,1"}, 0),
        ({"CUDA_VISIBLE_DEVICES": ""}, 1),
    ):
        before = dict(env)
        with claimed_gpus(requested, lock_dir=tmp_path / "locks", environ=env) as gpus:
            assert env == before and gpus == visible_gpus(before)
    assert not (tmp_path / "locks").exists()


def test_a_multi_gpu_claim_takes_distinct_gpus(tmp_path):
    env = {"CUDA_VISIBLE_DEVICES": "0,1,2,3"}
    with claimed_gpus(2, lock_dir=tmp_path, environ=env) as pair:
        other = {"CUDA_VISIBLE_DEVICES": "0,1,2,3"}
        with claimed_gpus(2, lock_dir=tmp_path, environ=other) as rest:
            assert sorted(pair + rest) == ["0", "1", "2", "3"]
            assert other["CUDA_VISIBLE_DEVICES"] == ",".join(rest)


def test_several_jobs_share_a_gpu_when_asked_and_fill_the_gpus_evenly(tmp_path):
    """TARGETCODEC_JOBS_PER_GPU=2: four one-GPU jobs on two GPUs, two per GPU, the first two on
    different GPUs; then every place in the pool is taken."""

    def env():
        return {"CUDA_VISIBLE_DEVICES": "0,1", "TARGETCODEC_JOBS_PER_GPU": "2"}

    with contextlib.ExitStack() as stack:
        claims = [
            stack.enter_context(claimed_gpus(1, lock_dir=tmp_path, environ=env(), log=lambda m: None))[0]
            for _ in range(4)
        ]
        assert sorted(claims[:2]) == ["0", "1"] and sorted(claims) == ["0", "0", "1", "1"]
        for lock in sorted(tmp_path.glob("gpu-*.lock")):
            assert _try_lock(lock) is None, lock
        assert len(list(tmp_path.glob("gpu-*.lock"))) == 4
    fd = _try_lock(tmp_path / "gpu-0.place1.lock")  # released after the block
    assert fd is not None
    os.close(fd)


def test_the_profile_offers_a_place_per_job_that_may_share_a_gpu():
    assert gpu_count_for_profile({"CUDA_VISIBLE_DEVICES": "0,1,2"}) == 3
    assert gpu_count_for_profile({"CUDA_VISIBLE_DEVICES": "0,1,2", "TARGETCODEC_JOBS_PER_GPU": "4"}) == 12
    with pytest.raises(ValueError, match="TARGETCODEC_JOBS_PER_GPU='0'"):
        gpu_count_for_profile({"CUDA_VISIBLE_DEVICES": "0", "TARGETCODEC_JOBS_PER_GPU": "0"})


def start_holder(lock_dir, gpus="0,1"):
    env = dict(os.environ, CUDA_VISIBLE_DEVICES=gpus, PYTHONPATH=str(REPO))
    return subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(lock_dir)], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )


@pytest.mark.timeout(120)
def test_processes_share_the_gpus_and_a_killed_job_frees_its_gpu(tmp_path):
    procs = [start_holder(tmp_path), start_holder(tmp_path)]
    try:
        a, b = (proc.stdout.readline().strip() for proc in procs)
        assert {a, b} == {"0", "1"}
        procs.append(start_holder(tmp_path))  # both GPUs taken: it waits
        waiting = procs[-1]
        time.sleep(1.5)
        assert waiting.poll() is None and not select.select([waiting.stdout], [], [], 0)[0]
        procs[0].send_signal(signal.SIGKILL)  # a job killed mid-run: the kernel drops its lock
        assert waiting.stdout.readline().strip() == a
        waiting.stdin.write("\n")
        waiting.stdin.flush()
        assert waiting.wait(timeout=30) == 0
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


@pytest.mark.timeout(120)
def test_a_command_runs_on_gpus_claimed_before_it_starts(tmp_path):
    """`python -m targetcodec.train.devices N -- COMMAND` (how the OSV5M stage starts torchrun): the
    command and every process it starts see the same claimed GPUs; a second command waits for them."""
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="0,1,2", TARGETCODEC_GPU_LOCKS=str(tmp_path), PYTHONPATH=str(REPO))
    # the command's child sees what the command sees, and holds the GPUs until told to stop
    child = "import os, sys; print(os.environ['CUDA_VISIBLE_DEVICES'], flush=True); sys.stdin.readline()"
    command = [sys.executable, "-m", "targetcodec.train.devices", "2", "--", sys.executable, "-c", child]
    procs = [subprocess.Popen(command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for _ in "ab"]
    try:
        ready, _, _ = select.select([proc.stdout for proc in procs], [], [], 60)  # whichever claimed first
        first = next(proc for proc in procs if proc.stdout is ready[0])
        second = next(proc for proc in procs if proc is not first)
        claimed = first.stdout.readline().strip().split(",")
        assert len(claimed) == 2 and set(claimed) < {"0", "1", "2"}
        time.sleep(1.5)  # one GPU left: the second command waits
        assert second.poll() is None and not select.select([second.stdout], [], [], 0)[0]
        first.stdin.write("\n")
        first.stdin.flush()
        assert first.wait(timeout=30) == 0
        assert len(second.stdout.readline().strip().split(",")) == 2
        second.stdin.write("\n")
        second.stdin.flush()
        assert second.wait(timeout=30) == 0
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
    failing = subprocess.run(
        [sys.executable, "-m", "targetcodec.train.devices", "1", "--", sys.executable, "-c", "raise SystemExit(3)"],
        env=env,
    )
    assert failing.returncode == 3  # the command's exit status is the job's
