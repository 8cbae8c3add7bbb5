"""What every workflow script does around its work: log to its job log (and stderr), record
the full traceback of a failure in that log, and keep torch to the job's threads."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
import traceback
from pathlib import Path


def seconds_since_process_start() -> float | None:
    """Seconds since this process started (Linux: /proc), else None. In a job's first log line this
    is its start-up: Python, imports and Snakemake's script preamble."""
    try:
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22 of proc(5): start time in ticks
    except (OSError, ValueError, IndexError):
        return None


@contextlib.contextmanager
def job_log(path, name: str = "targetcodec"):
    """Yield a ``log(message)`` function writing to ``path`` and stderr with timestamps (to the
    millisecond). The first line gives the job's start-up, the last its time in the block (for
    benchmarks/grid.py)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger(f"{name}.{path}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    formatter = logging.Formatter("%(asctime)s.%(msecs)03d %(message)s", "%Y-%m-%d %H:%M:%S")
    handlers = [logging.FileHandler(path, mode="w"), logging.StreamHandler(sys.stderr)]
    for h in handlers:
        h.setFormatter(formatter)
        logger.addHandler(h)
    startup = seconds_since_process_start()
    if startup is not None:
        logger.info(
            "start-up: %.3f s (process start to this line: Python, imports, Snakemake's script preamble)", startup
        )
    start = time.perf_counter()
    try:
        yield logger.info
        logger.info("job done: %.3f s after start-up", time.perf_counter() - start)
    except BaseException as e:
        logger.error("FAILED: %s: %s\n%s", type(e).__name__, e, traceback.format_exc())
        raise
    finally:
        for h in handlers:
            h.close()
            logger.removeHandler(h)


def set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(max(1, int(threads)))
