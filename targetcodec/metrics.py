"""Test metrics of section 4: MAE, rMSE and R^2 (as in Grinsztajn et al., 2022), per run.

Inputs are ``[..., n, m]``; outputs ``[...]``. For m > 1, MAE and rMSE average over all target
coordinates and R^2 is the mean of the per-coordinate R^2 (scikit-learn's "uniform_average").
"""

from __future__ import annotations

import torch


def mean_absolute_error(y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    return (y - z).abs().mean(dim=(-2, -1))


def root_mean_squared_error(y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    return ((y - z) ** 2).mean(dim=(-2, -1)).sqrt()


def r_squared(y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    residual = ((y - z) ** 2).sum(-2)
    total = ((y - y.mean(-2, keepdim=True)) ** 2).sum(-2)
    return (1 - residual / total).mean(-1)


def regression_metrics(y: torch.Tensor, z: torch.Tensor, prefix: str = "") -> dict[str, torch.Tensor]:
    return {
        f"{prefix}mae": mean_absolute_error(y, z),
        f"{prefix}rmse": root_mean_squared_error(y, z),
        f"{prefix}r2": r_squared(y, z),
    }
