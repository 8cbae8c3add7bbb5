"""Hyper-parameter selection on validation MAE (section 4: "selected ... via a log-space sweep"),
and the paired significance test of the tables."""

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


def paired_test(values: np.ndarray, reference: np.ndarray) -> dict:
    """Wilcoxon signed-rank test of paired per-seed values against a reference (two-sided, exact
    for small samples without ties). Returns the statistic, the p-value and the mean difference."""
    values, reference = np.asarray(values, float), np.asarray(reference, float)
    diff = values - reference
    if len(diff) < 2 or np.allclose(diff, 0) or np.isnan(diff).any():
        return {"statistic": math.nan, "p_value": math.nan, "mean_difference": float(np.nanmean(diff)) if len(diff) else math.nan,
                "pairs": int(len(diff))}
    from scipy import stats  # imported here: training jobs need select_best, not scipy (0.8 s to import)

    result = stats.wilcoxon(values, reference, alternative="two-sided")
    return {"statistic": float(result.statistic), "p_value": float(result.pvalue), "mean_difference": float(diff.mean()),
            "pairs": int(len(diff))}


def smallest_p_value(pairs: int) -> float:
    """The smallest two-sided p-value an exact Wilcoxon test can give with this many pairs: 2 / 2^n."""
    return 2.0 / 2**pairs


def significance_markers(frame: pd.DataFrame, metric: str, alpha: float, higher_is_better: bool,
                         reference: str = "least_squares") -> dict[tuple[str, str], str]:
    """For each (configuration, dataset), " (+)" if significantly better than the reference method on
    the same dataset and seeds (Wilcoxon, p < alpha), " (-)" if significantly worse, else ""."""
    column = f"test_{metric}"
    markers = {}
    ref = frame[frame["method"] == reference].set_index(["dataset", "seed"])[column]
    for (configuration, dataset), group in frame.groupby(["configuration", "dataset"]):
        if group["method"].iloc[0] == reference:
            continue
        paired = group.set_index("seed")[column].to_frame("value").join(ref.xs(dataset, level="dataset").rename("ref"), how="inner") \
            if dataset in ref.index.get_level_values(0) else pd.DataFrame()
        if len(paired) < 2:
            continue
        test = paired_test(paired["value"].to_numpy(), paired["ref"].to_numpy())
        if not test["p_value"] < alpha:
            continue
        better = test["mean_difference"] > 0 if higher_is_better else test["mean_difference"] < 0
        markers[(configuration, dataset)] = " (+)" if better else " (-)"
    return markers
