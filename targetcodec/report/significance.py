"""The paired significance test of Tables 3-5: each configuration against the reference method
(least squares) on the same dataset and seeds."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd


def paired_test(values: np.ndarray, reference: np.ndarray) -> dict:
    """Wilcoxon signed-rank test of paired per-seed values against a reference (two-sided, exact
    for small samples without ties). Returns the statistic, the p-value and the mean difference."""
    values, reference = np.asarray(values, float), np.asarray(reference, float)
    diff = values - reference
    if len(diff) < 2 or np.allclose(diff, 0) or np.isnan(diff).any():
        return {
            "statistic": math.nan,
            "p_value": math.nan,
            "mean_difference": float(np.nanmean(diff)) if len(diff) else math.nan,
            "pairs": int(len(diff)),
        }
    from scipy import stats  # 0.8 s to import: only when a test runs

    result = stats.wilcoxon(values, reference, alternative="two-sided")
    return {
        "statistic": float(result.statistic),
        "p_value": float(result.pvalue),
        "mean_difference": float(diff.mean()),
        "pairs": int(len(diff)),
    }


def smallest_p_value(pairs: int) -> float:
    """The smallest two-sided p-value an exact Wilcoxon test can give with this many pairs: 2 / 2^n."""
    return 2.0 / 2**pairs


def paired_tests(frame: pd.DataFrame, metric: str, reference: str = "least_squares") -> dict[tuple[str, str], dict]:
    """For each (configuration, dataset) of another method than the reference: ``paired_test`` of its
    per-seed test metric against the reference method's on the same dataset and seeds. A failed run
    (NaN in metrics.parquet) pairs with nothing; a cell with fewer than 2 pairs is left out."""
    column = f"test_{metric}"
    tests = {}
    ref = frame[frame["method"] == reference].set_index(["dataset", "seed"])[column]
    for (configuration, dataset), group in frame.groupby(["configuration", "dataset"]):
        if group["method"].iloc[0] == reference:
            continue
        paired = (
            group.set_index("seed")[column]
            .to_frame("value")
            .join(ref.xs(dataset, level="dataset").rename("ref"), how="inner")
            if dataset in ref.index.get_level_values(0)
            else pd.DataFrame()
        )
        paired = paired.dropna()
        if len(paired) < 2:
            continue
        tests[(configuration, dataset)] = paired_test(paired["value"].to_numpy(), paired["ref"].to_numpy())
    return tests


def marker(test: dict, alpha: float, higher_is_better: bool) -> str:
    """ " (+)" for a test significantly better than the reference (p < alpha), " (-)" for worse, else ""."""
    if not test["p_value"] < alpha:
        return ""
    better = test["mean_difference"] > 0 if higher_is_better else test["mean_difference"] < 0
    return " (+)" if better else " (-)"


def significance_markers(
    frame: pd.DataFrame, metric: str, alpha: float, higher_is_better: bool, reference: str = "least_squares"
) -> dict[tuple[str, str], str]:
    """For each (configuration, dataset), " (+)" if significantly better than the reference method on
    the same dataset and seeds (Wilcoxon, p < alpha), " (-)" if significantly worse, else ""."""
    tests = paired_tests(frame, metric, reference).items()
    return {key: mark for key, test in tests if (mark := marker(test, alpha, higher_is_better))}
