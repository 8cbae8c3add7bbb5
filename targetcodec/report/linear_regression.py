"""A linear-regression reference: scikit-learn's ``LinearRegression`` (ordinary least squares with an
intercept, solved exactly) fitted on a dataset's prepared training split and evaluated on its
validation and test splits with the metrics of the trained runs (targetcodec/metrics.py).

It has no training loop, no seeds and no hyper-parameters: one number per dataset and metric, the
yardstick for the least squares baseline of the paper, which performs like a linear model (the
paper comparison, targetcodec/report/paper.py, shows it as a row). The features are the prepared
ones, scaled as the training jobs see them (min-max for tables; images standardised per channel,
flattened here into one feature per pixel and channel).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..data.split import SplitData

SPLITS = ("val", "test")
METRICS = ("mae", "rmse", "r2")


def predictions(data: SplitData) -> dict[str, np.ndarray]:
    """The fitted model's predictions [n, m] on the validation and test splits (float64)."""
    from sklearn.linear_model import LinearRegression

    def flat(x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float64).reshape(len(x), -1)

    model = LinearRegression().fit(flat(data.X_train), np.asarray(data.y_train, dtype=np.float64))
    return {split: model.predict(flat(getattr(data, f"X_{split}"))).reshape(-1, data.m) for split in SPLITS}


def linear_regression_metrics(data: SplitData) -> dict[str, float]:
    """``val_mae`` ... ``test_r2`` of the linear model, on the [0, 1] target scale of the tables."""
    import torch

    from ..metrics import regression_metrics

    out = {}
    for split, z in predictions(data).items():
        y = torch.as_tensor(np.asarray(getattr(data, f"y_{split}"), dtype=np.float64))
        values = regression_metrics(y, torch.as_tensor(z), prefix=f"{split}_")
        out.update({name: float(value) for name, value in values.items()})
    return out


def linear_regression_table(prepared: dict[str, str], codes: dict[str, str]) -> pd.DataFrame:
    """A row per dataset: its key, code, training rows, features and metrics. ``prepared`` maps each
    dataset key to its prepared .npz (rule prepare); a damaged file raises an error naming it."""
    rows = []
    for dataset, path in prepared.items():
        data = SplitData.load(path)
        rows.append(
            {
                "dataset": dataset,
                "code": codes.get(dataset, dataset),
                "train_rows": len(data.y_train),
                "features": int(np.prod(data.X_train.shape[1:])),
                **linear_regression_metrics(data),
            }
        )
    columns = ["dataset", "code", "train_rows", "features"] + [f"{s}_{m}" for s in SPLITS for m in METRICS]
    return pd.DataFrame(rows, columns=columns)


def read_linear_regression(path) -> pd.DataFrame:
    """The table rule linear_regression wrote; a damaged one or one without its columns names the file."""
    from ..io import read_csv

    return read_csv(path, ("dataset", "code", *(f"test_{m}" for m in METRICS)))
