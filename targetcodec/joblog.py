"""What every workflow script does around its work: log to its job log (and stderr), record
the full traceback of a failure in that log, and keep torch to the job's threads."""

from __future__ import annotations

import contextlib
import logging
import sys
import traceback
from pathlib import Path


@contextlib.contextmanager
def job_log(path, name: str = "targetcodec"):
    """Yield a ``log(message)`` function writing to ``path`` and stderr with timestamps."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger(f"{name}.{path}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    formatter = logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S")
    handlers = [logging.FileHandler(path, mode="w"), logging.StreamHandler(sys.stderr)]
    for h in handlers:
        h.setFormatter(formatter)
        logger.addHandler(h)
    try:
        yield logger.info
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
