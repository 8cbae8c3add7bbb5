"""Hyper-parameter selection on validation MAE (section 4: "selected ... via a log-space sweep")."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

SWEEP_SEED_OFFSET = 1000  # sweep seeds are 1000, 1001, ...: never the seeds of the reported runs


def sweep_seeds(count: int) -> list[int]:
    return [SWEEP_SEED_OFFSET + i for i in range(count)]


class NothingToSelect(ValueError):
    """Every run of every value of a sweep failed: no value can be chosen."""


def failed_runs(runs: pd.DataFrame) -> pd.Series:
    """Which runs failed (column ``failed``, train/failures.py); tables without it (older sweeps)
    count a run without a finite validation MAE as failed."""
    failed = ~np.isfinite(runs["val_mae"].astype(float))
    if "failed" in runs.columns:
        failed |= runs["failed"].astype(bool)
    return failed


def select_best(runs: pd.DataFrame, param: str) -> dict:
    """The grid value with the lowest mean validation MAE over the sweep seeds.

    Failed runs (failures.py) are never averaged: each value's mean is over its runs that did not
    fail. A value where any run failed ranks after every value without a failure (fewer failures
    first), and a value whose runs all failed is never chosen; if that is every value, this raises
    NothingToSelect naming the dataset, the configuration and the parameter. Ties go to the first
    value in grid order.
    """
    if runs.empty:
        raise ValueError("no sweep runs to select from")
    runs = runs.assign(_failed=failed_runs(runs))
    per_value = runs.groupby(param, sort=False).agg(
        failed=("_failed", "sum"),
        runs=("_failed", "size"),
        mean=("val_mae", lambda v: v[~runs.loc[v.index, "_failed"]].mean()),
    )
    usable = per_value[per_value["failed"] < per_value["runs"]]
    if usable.empty:
        where = ", ".join(f"{c} {runs[c].iloc[0]!r}" for c in ("dataset", "configuration") if c in runs.columns)
        reasons = sorted(set(runs["failure"].dropna().astype(str))) if "failure" in runs.columns else []
        reason = reasons[0] if reasons else "no finite validation MAE"
        raise NothingToSelect(
            f"sweep of {param} for {where or 'this configuration'}: all {len(runs)} runs of every value "
            f"({', '.join(f'{v:g}' for v in per_value.index)}) failed (e.g. {reason}), so no value can be selected. "
            f"Widen or move the grid (config key 'sweeps.{param}.grid') or check the dataset"
        )
    best = usable.sort_values(["failed"], kind="stable")
    best = best[best["failed"] == best["failed"].iloc[0]]["mean"].idxmin()
    return {
        "param": param,
        "value": float(best),
        "mean_val_mae": {repr(float(v)): (None if math.isnan(m) else float(m)) for v, m in per_value["mean"].items()},
        "failed_runs": {repr(float(v)): int(n) for v, n in per_value["failed"].items()},
        "seeds": sorted(int(s) for s in runs["seed"].unique()),
    }
