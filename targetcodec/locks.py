"""One live job per checkpoint.

Snakemake locks a working directory, not the results folder: two working directories (or two
clones) whose config names the same ``results`` can run the same job at once, and the second
would resume from the first one's checkpoint while the first still writes it. A training job
therefore holds an exclusive lock on a file next to its checkpoint (``<checkpoint>.lock``) for
its whole life; a second job finds it held and stops, naming the checkpoint and the process that
holds it. The kernel releases the lock when its process ends, however it ends (``flock``): a
killed job never leaves a lock that stops its rerun.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import socket
from pathlib import Path


class CheckpointInUse(RuntimeError):
    """Another live process holds the checkpoint's lock."""


def lock_file(checkpoint) -> Path:
    """The lock of a checkpoint file or folder: beside it, so that it outlives the folder's removal."""
    path = Path(checkpoint)
    return path.with_name(f"{path.name}.lock")


@contextlib.contextmanager
def checkpoint_lock(checkpoint, log=None):
    """Hold ``checkpoint``'s lock for the block, or raise ``CheckpointInUse`` at once if another
    process holds it. The lock file is removed at the end."""
    lock = lock_file(checkpoint)
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = _acquire(lock, checkpoint)
    try:
        holder = f"pid {os.getpid()} on {socket.gethostname()} since {dt.datetime.now().isoformat(timespec='seconds')}"
        os.ftruncate(fd, 0)
        os.write(fd, holder.encode())
        if log is not None:
            log(f"checkpoint {checkpoint}: locked ({lock}, {holder})")
        yield
    finally:
        # removed while still held: a process that opened the old file meanwhile sees it is gone and retries
        lock.unlink(missing_ok=True)
        os.close(fd)


def _acquire(lock: Path, checkpoint) -> int:
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "a process still starting"
            os.close(fd)
            raise CheckpointInUse(
                f"checkpoint {checkpoint} is in use by another live job ({holder}; lock {lock}). Two runs "
                f"write into one results folder, e.g. Snakemake started from two working directories: let "
                f"the other finish, or give this run a results folder of its own (config key 'results')"
            ) from None
        try:
            if os.stat(lock).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # its holder removed it between our open and our lock: take the new one
