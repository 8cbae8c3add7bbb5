"""When a run has failed: what a user means by a run that did not work, decided per run from its
own validation data, so that a failed run is recorded as failed and never averaged into a table.

A run has failed if it never had a finite validation MAE (it diverged to NaN or infinity), or if
its best validation MAE is no better than predicting the mean of the training targets for every
row (the bound of ``mean_predictor_val_mae``). The paper is silent; the bound is ours: it is what a
network that learnt nothing from the features achieves (least squares on no features gives the
training mean), so it flags runs that blew up to large finite values (a learning rate far too high
gives validation MAEs in the thousands on [0, 1] targets) without judging runs that learnt little.
The training *mean* and not the median (the MAE-optimal constant) keeps the bound lenient: a run
is called failed only where it is worse than the simplest constant, never for being merely weak.
"""

from __future__ import annotations

import math

import numpy as np


def mean_predictor_val_mae(y_train: np.ndarray, y_val: np.ndarray) -> float:
    """Validation MAE of predicting the training mean for every row, in the [0, 1] target scale of
    training and with the pack's reduction (mean over rows and target coordinates)."""
    return float(np.abs(np.asarray(y_val) - np.asarray(y_train).mean(0)).mean())


def failure_of(best_val_mae: float, bound: float) -> str | None:
    """Why a run with this best validation MAE has failed, or None if it has not."""
    if best_val_mae is None or not math.isfinite(best_val_mae):
        return "diverged: no finite validation MAE"
    if best_val_mae >= bound:
        return f"best validation MAE {best_val_mae:.4g} is no better than predicting the training mean ({bound:.4g})"
    return None


def non_finite_metrics(metrics: dict[str, float]) -> list[str]:
    """The metrics of a run that are NaN or infinite."""
    return [name for name, value in metrics.items() if not math.isfinite(value)]


def check_finished_run(metrics: dict[str, float], failure: str | None, what: str) -> None:
    """A run that has not failed must have finite metrics: a NaN or infinite test metric is an
    error (the data holds something preparation let through), never a number for a table."""
    if failure is not None:
        return
    bad = non_finite_metrics(metrics)
    if bad:
        raise FloatingPointError(
            f"{what}: {', '.join(f'{name} = {metrics[name]}' for name in bad)} although the run has a finite validation "
            f"MAE: the test or validation split holds values the trained network cannot predict (an extreme feature value "
            f"in a row of that split, or a target that is constant on it). Check the dataset's rows; nothing was written"
        )
