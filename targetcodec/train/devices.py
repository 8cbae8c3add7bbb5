"""Which GPUs a training job uses.

SLURM gives each job its own GPUs and says which in CUDA_VISIBLE_DEVICES. Locally Snakemake only
counts GPUs (``--resources gpu=N``) and never says which one a job may use: a job that sees more
GPUs than it asked for therefore claims its own from a pool of lock files, one per GPU, and narrows
CUDA_VISIBLE_DEVICES to them before CUDA starts. The locks are ``flock`` locks, which the kernel
releases when the process ends, however it ends: a killed job never keeps a GPU.

A pack of a few runs uses a small part of a large GPU, so several training jobs may share one:
``TARGETCODEC_JOBS_PER_GPU=S`` gives each GPU S places in the pool (lock files), and the profile
offers Snakemake S places per GPU. Jobs fill the GPUs evenly: a GPU takes a second job only when
every GPU has one.

A job that starts other processes on its GPUs (torchrun for the OSV5M stage's DDP) claims them
before it starts them: ``python -m targetcodec.train.devices N -- COMMAND ...`` runs COMMAND on N
GPUs of its own.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LOCK_DIR_VARIABLE = "TARGETCODEC_GPU_LOCKS"  # where the pool's lock files live, if not in SHARED_LOCK_DIR
JOBS_PER_GPU_VARIABLE = "TARGETCODEC_JOBS_PER_GPU"  # training jobs that may share one GPU (default 1)
SHARED_LOCK_DIR = Path(tempfile.gettempdir()) / "targetcodec-gpu-locks"


def visible_gpus(environ=os.environ) -> list[str]:
    """The GPUs this process may use, named as CUDA_VISIBLE_DEVICES names them (indices or UUIDs),
    else 0..n-1 for the n GPUs the driver reports."""
    value = environ.get("CUDA_VISIBLE_DEVICES")
    if value is None:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]  # NVML: does not start CUDA
    gpus = []
    for entry in value.split(","):
        entry = entry.strip()
        if not entry or entry.startswith("-"):  # CUDA ignores an invalid entry and everything after it
            break
        gpus.append(entry)
    return gpus


def jobs_per_gpu(environ=os.environ) -> int:
    """How many training jobs may share one GPU: TARGETCODEC_JOBS_PER_GPU, default 1."""
    value = environ.get(JOBS_PER_GPU_VARIABLE, "1")
    try:
        jobs = int(value)
    except ValueError:
        jobs = 0
    if jobs < 1:
        raise ValueError(
            f"{JOBS_PER_GPU_VARIABLE}={value!r}: expected a whole number of training jobs per GPU, at least 1"
        )
    return jobs


def gpu_count_for_profile(environ=os.environ) -> int:
    """The places profiles/local-gpu offers Snakemake (--resources gpu=N): the visible GPUs times
    the training jobs that may share one (TARGETCODEC_JOBS_PER_GPU)."""
    n = len(visible_gpus(environ))
    if n == 0:
        raise RuntimeError(
            "profiles/local-gpu: no GPU is visible (CUDA_VISIBLE_DEVICES="
            f"{environ.get('CUDA_VISIBLE_DEVICES', 'unset')}); leave the profile out to train on the CPU"
        )
    return n * jobs_per_gpu(environ)


def default_lock_dir() -> Path:
    configured = os.environ.get(LOCK_DIR_VARIABLE)
    return Path(configured) if configured else SHARED_LOCK_DIR


@contextlib.contextmanager
def claimed_gpus(requested: int, log=print, lock_dir=None, environ=os.environ, poll_seconds: float = 1.0):
    """Run the block on ``requested`` GPUs of its own; yields the GPUs the job may use.

    Only a job that sees more GPUs than it asked for claims some (a local machine with several
    GPUs): it waits until that many are free, then narrows CUDA_VISIBLE_DEVICES to them for the
    block. A job given its GPUs by SLURM, or one that asked for none, changes nothing. A GPU is
    free while fewer than TARGETCODEC_JOBS_PER_GPU jobs use it.
    """
    gpus = visible_gpus(environ)
    if requested < 1 or len(gpus) <= requested:
        yield gpus
        return
    lock_dir = Path(lock_dir) if lock_dir else default_lock_dir()
    lock_dir.mkdir(parents=True, exist_ok=True)
    if lock_dir == SHARED_LOCK_DIR:  # the machine's pool, whoever runs the jobs: every user may add locks
        with contextlib.suppress(PermissionError):
            lock_dir.chmod(0o1777)
    held = _wait_for_gpus(gpus, requested, lock_dir, poll_seconds, log, jobs_per_gpu(environ))
    before = environ.get("CUDA_VISIBLE_DEVICES")
    claimed = [gpu for gpu, _ in held]
    environ["CUDA_VISIBLE_DEVICES"] = ",".join(claimed)
    log(f"GPU pool: this job uses GPU {','.join(claimed)} of {','.join(gpus)} (locks in {lock_dir})")
    try:
        if environ is os.environ:
            _check_cuda_sees(claimed)
        yield claimed
    finally:
        if before is None:
            environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            environ["CUDA_VISIBLE_DEVICES"] = before
        for _, fd in held:
            os.close(fd)  # releases the lock


def _check_cuda_sees(claimed: list[str]) -> None:
    """CUDA reads CUDA_VISIBLE_DEVICES once, when it starts: if it had started (counting GPUs without
    NVML starts it), this job would run on another job's GPU. Say so rather than do it."""
    import torch

    if torch.cuda.is_available() and torch.cuda.device_count() != len(claimed):
        raise RuntimeError(
            f"GPU pool: CUDA started before this job could keep to GPU {','.join(claimed)}; "
            "name the GPUs in CUDA_VISIBLE_DEVICES for the whole run (e.g. 0,1,2,3)"
        )


def _lock_file(lock_dir: Path, gpu: str, place: int) -> Path:
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", gpu)
    return lock_dir / (f"gpu-{name}.lock" if place == 0 else f"gpu-{name}.place{place}.lock")


def _wait_for_gpus(gpus, requested, lock_dir, poll_seconds, log, places: int = 1) -> list[tuple[str, int]]:
    said = False
    while True:
        held = []
        for place in range(places):  # every GPU's first place, then every GPU's second, ...: jobs spread out
            for gpu in gpus:
                if any(gpu == g for g, _ in held):
                    continue
                fd = _try_lock(_lock_file(lock_dir, gpu, place))
                if fd is not None:
                    held.append((gpu, fd))
                    if len(held) == requested:
                        return held
        for _, fd in held:  # never sit on part of a claim: two jobs could each wait for the other's GPUs
            os.close(fd)
        if not said:
            log(f"GPU pool: waiting for {requested} of GPUs {','.join(gpus)} to be free (locks in {lock_dir})")
            said = True
        time.sleep(poll_seconds)


def _try_lock(path: Path) -> int | None:
    fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)  # flock needs no write access: other users may lock it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fd
    except BlockingIOError:
        os.close(fd)
        return None


def run_on_claimed_gpus(argv=None) -> int:
    """``python -m targetcodec.train.devices N -- COMMAND [ARGS ...]``: COMMAND on N GPUs of its own
    from the local pool (``claimed_gpus``), and COMMAND's exit status; the GPUs are free again when it
    ends. For commands whose processes must all see the same GPUs, such as torchrun."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if len(argv) < 3 or argv[1] != "--" or not argv[0].isdigit():
        raise SystemExit("usage: python -m targetcodec.train.devices GPUS -- COMMAND [ARGS ...]")
    with claimed_gpus(int(argv[0]), log=lambda message: print(message, file=sys.stderr, flush=True)):
        return subprocess.call(argv[2:])


def choose_device(requested: str, log=print):
    """``auto``: the first GPU this job may see (CUDA_VISIBLE_DEVICES, set by SLURM or the user),
    else the CPU, said in the log. ``cpu``, ``cuda`` or ``cuda:N`` are taken as given."""
    import torch

    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "unset")
    if requested == "auto":
        if torch.cuda.is_available():
            device = torch.device("cuda")
            log(f"device: {torch.cuda.get_device_name(device)} (CUDA_VISIBLE_DEVICES={visible})")
            return device
        log(
            f"device: the CPU, as torch {torch.__version__} sees no GPU (CUDA_VISIBLE_DEVICES={visible}, "
            f"torch built for CUDA {torch.version.cuda or 'none'})"
        )
        return torch.device("cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"config key 'device' asks for {requested!r} but no GPU is visible to this job")
    log(f"device: {device}")
    return device


if __name__ == "__main__":
    sys.exit(run_on_claimed_gpus())
