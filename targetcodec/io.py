"""Atomic file writing: a reader (or Snakemake after a crash) never sees a half-written file; and
reading back what the workflow wrote, with an error that names a damaged file and what to do.

Files are written with the permissions the umask allows (0666 & ~umask, as ``open`` would), not
mkstemp's 0600, so that collaborators can read a results folder on a shared file system. Nothing
is read in a way that can run code: no pickle (``np.load(..., allow_pickle=False)``,
``torch.load(..., weights_only=True)``).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

DELETE_AND_RUN_AGAIN = "delete it and run the workflow again: it rebuilds the file"


class DamagedFile(RuntimeError):
    """A file the workflow wrote (or was handed) cannot be read back; the message names it."""


def damaged(path, error: BaseException, remedy: str = DELETE_AND_RUN_AGAIN) -> DamagedFile:
    return DamagedFile(f"{path} is damaged or unreadable ({type(error).__name__}: {error}); {remedy}")


def current_umask() -> int:
    """The process's umask, read without changing it where Linux says it (/proc), else by setting
    and restoring it."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path next to ``path``; move it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp gives 0600 whatever the umask
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_write_json(path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=True, default=_json_default) + "\n")


def atomic_save_npz(path, **arrays) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


def write_parquet(frame, path) -> None:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def read_json(path, remedy: str = DELETE_AND_RUN_AGAIN):
    """A JSON file; a truncated or garbled one raises DamagedFile naming it."""
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise damaged(path, e, remedy) from e


def read_parquet(path, remedy: str = DELETE_AND_RUN_AGAIN):
    """A parquet table; a truncated or garbled one raises DamagedFile naming it."""
    import pandas as pd

    try:
        return pd.read_parquet(path)
    except FileNotFoundError:
        raise
    except Exception as e:  # pyarrow raises several types (ArrowInvalid, OSError, ...)
        raise damaged(path, e, remedy) from e


def read_csv(path, columns=(), remedy: str = DELETE_AND_RUN_AGAIN):
    """A CSV table the workflow wrote; a truncated or garbled one, or one without ``columns``, raises
    DamagedFile naming it."""
    import pandas as pd

    try:
        frame = pd.read_csv(path)
    except FileNotFoundError:
        raise
    except Exception as e:  # pandas' ParserError and EmptyDataError, UnicodeDecodeError, OSError
        raise damaged(path, e, remedy) from e
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise damaged(path, ValueError(f"no column {', '.join(missing)}"), remedy)
    return frame


def load_npz(path, names, remedy: str = DELETE_AND_RUN_AGAIN) -> dict[str, np.ndarray]:
    """The arrays ``names`` of an .npz file, read eagerly and never unpickled (an object array is
    refused); a truncated, garbled or incomplete file raises DamagedFile naming it."""
    try:
        with np.load(path, allow_pickle=False) as d:
            return {name: d[name] for name in names}
    except FileNotFoundError:
        raise
    except Exception as e:  # zipfile.BadZipFile, EOFError, KeyError, ValueError (pickled arrays), OSError
        raise damaged(path, e, remedy) from e


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
