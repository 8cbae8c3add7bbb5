"""Hyper-parameter selection on validation MAE (section 4: "selected ... via a log-space sweep")."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

SWEEP_SEED_OFFSET = 1000  # sweep seeds are 1000, 1001, ...: never the seeds of the reported runs


def sweep_seeds(count: int) -> list[int]:
    return [SWEEP_SEED_OFFSET + i for i in range(count)]


def select_best(runs: pd.DataFrame, param: str) -> dict:
    """The grid value with the lowest mean validation MAE over the sweep seeds.

    A diverged run (NaN) counts as infinitely bad, so a value where any seed diverged is chosen only
    if every value diverged. Ties go to the first value in grid order.
    """
    if runs.empty:
        raise ValueError("no sweep runs to select from")
    val = runs.assign(val_mae=runs["val_mae"].fillna(math.inf))
    means = val.groupby(param, sort=False)["val_mae"].mean()
    best = means.idxmin()
    return {
        "param": param,
        "value": float(best),
        "mean_val_mae": {repr(float(v)): float(m) for v, m in means.items()},
        "seeds": sorted(int(s) for s in runs["seed"].unique()),
        "all_diverged": bool(np.isinf(means).all()),
    }
