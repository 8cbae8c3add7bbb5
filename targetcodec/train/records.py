"""One JSON file per run (dataset, configuration, seed) with its settings and provenance."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

from ..io import atomic_write_json
from ..specs import RunResult

PACKAGES = [
    "targetcodec",
    "torch",
    "numpy",
    "pandas",
    "scikit-learn",
    "scipy",
    "snakemake",
    "openml",
    "ucimlrepo",
    "medmnist",
]


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def hardware(device) -> dict:
    import torch

    info = {
        "host": platform.node(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    for var in ("SLURM_JOB_ID", "SLURM_JOB_PARTITION", "CUDA_VISIBLE_DEVICES"):
        if var in os.environ:
            info[var.lower()] = os.environ[var]
    return info


def git_commit(path: str | Path = ".") -> str | None:
    """The commit of the workflow's checkout (with "+dirty" for uncommitted changes), None outside git."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=path,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        return None


def run_record(
    result: RunResult,
    *,
    dataset: str,
    code: str,
    configuration,
    settings: dict,
    provenance: dict,
    failure: str | None = None,
    mean_predictor_val_mae: float | None = None,
) -> dict:
    """The run file. ``failed``/``failure``: whether and why the run failed (train/failures.py); a
    failed run keeps the metrics it measured here, but no table or figure uses them."""
    return {
        "dataset": dataset,
        "code": code,
        "method": configuration.method,
        "k": configuration.k,
        "configuration": configuration.label,
        "seed": result.spec.seed,
        "hyperparameters": {
            f.name: getattr(result.spec, f.name) for f in dataclasses.fields(result.spec) if f.name != "seed"
        },
        "metrics": result.metrics,
        "epochs_trained": result.epochs_trained,
        "best_epoch": result.best_epoch,
        "diverged": result.diverged,
        "failed": failure is not None,
        "failure": failure,
        "mean_predictor_val_mae": mean_predictor_val_mae,
        "val_mae_history": result.val_mae_history,
        "settings": settings,
        "provenance": provenance,
    }


def provenance(device, wall_seconds: float, pack_seeds: list[int], started: dt.datetime, workdir=".") -> dict:
    return {
        "versions": package_versions(),
        "hardware": hardware(device),
        "git_commit": git_commit(workdir),
        "wall_seconds": wall_seconds,
        "pack_size": len(pack_seeds),
        "pack_seeds": pack_seeds,
        "started": started.isoformat(timespec="seconds"),
        "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def write_run(path, record: dict) -> None:
    atomic_write_json(path, record)
