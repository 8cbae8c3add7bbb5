"""Figures 3-7 of the paper from the aggregated metrics (seaborn), as PNG and PDF."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from ..io import atomic_path
from ..methods import METHODS

METRIC_NAMES = {"mae": "MAE", "rmse": "rMSE", "r2": "$R^2$"}


def short_name(method: str) -> str:
    """A method's name in the figures' legends (its ``short`` in the registry)."""
    return METHODS[method].short


def at_k(frame: pd.DataFrame, k: int) -> pd.DataFrame:
    """Regression baselines (no k) plus the configurations with k classes at this k."""
    keep = frame["k"].isna() | (frame["k"] == k)
    out = frame[keep].copy()
    out["Method"] = pd.Categorical(
        out["method"].map(short_name), [METHODS[m].short for m in METHODS if m in set(out["method"])]
    )
    return out


def normalised_per_dataset(frame: pd.DataFrame, metric: str, k: int, omit=("huber",)) -> pd.DataFrame:
    """Each run's test metric divided by the mean of least squares on the same dataset (Figures 3, 6, 7)."""
    data = at_k(frame, k)
    column = f"test_{metric}"
    reference = data[data["method"] == "least_squares"].groupby("dataset")[column].mean()
    data = data[~data["method"].isin(omit)].copy()
    data["normalised"] = data[column] / data["dataset"].map(reference)
    data["Method"] = data["Method"].cat.remove_unused_categories()
    return data


def averaged_over_datasets(frame: pd.DataFrame, metric: str, k: int) -> pd.DataFrame:
    """Per method and seed, the test metric averaged over datasets (Figures 4 top and 5); the spread
    over seeds gives the 2 sigma intervals."""
    data = at_k(frame, k)
    return data.groupby(["Method", "seed"], observed=True)[f"test_{metric}"].mean().reset_index()


def save(fig, stem) -> list[str]:
    paths = []
    for ext in ("png", "pdf"):
        with atomic_path(f"{stem}.{ext}") as tmp:
            fig.savefig(tmp, format=ext, dpi=150, bbox_inches="tight")
        paths.append(f"{stem}.{ext}")
    plt.close(fig)
    return paths


def _codes(data, codes):
    return data.assign(Dataset=data["dataset"].map(lambda d: codes.get(d, d)))


def figure_normalised(frame: pd.DataFrame, metric: str, k: int, stem: str, codes: dict[str, str], number: int):
    """Figure 3 (MAE), 6 (rMSE), 7 (R^2): per dataset, normalised to least squares; Huber omitted
    as in the paper's footnote 2."""
    data = _codes(normalised_per_dataset(frame, metric, k), codes)
    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * data["Dataset"].nunique(), 4))
    sns.barplot(data=data, x="Dataset", y="normalised", hue="Method", errorbar=("sd", 2), ax=ax, palette="colorblind")
    ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    low = data.groupby(["Dataset", "Method"], observed=True)["normalised"].mean().min()
    ax.set_ylim(max(0.0, min(0.9, low - 0.05)), None)
    ax.set_ylabel(f"test {METRIC_NAMES[metric]} / least squares")
    ax.set_title(
        f"Figure {number}: test {METRIC_NAMES[metric]} normalised to least squares (k = {k}, "
        f"{frame['seed'].nunique()} seeds, bars ±2σ)"
    )
    ax.legend(bbox_to_anchor=(1.01, 1), loc="upper left", fontsize="small")
    return save(fig, stem)


def figure_averaged(frame: pd.DataFrame, metrics: list[str], k: int, stem: str, title: str):
    """Figure 4 top (MAE) and Figure 5 (rMSE, R^2): averaged over datasets, ±2σ over seeds."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 4), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        data = averaged_over_datasets(frame, metric, k)
        sns.pointplot(
            data=data,
            x="Method",
            y=f"test_{metric}",
            errorbar=("sd", 2),
            linestyle="none",
            capsize=0.2,
            ax=ax,
            hue="Method",
            palette="colorblind",
            legend=False,
        )
        ax.set_ylabel(f"test {METRIC_NAMES[metric]}, mean over datasets")
        ax.set_xlabel("")
        ax.tick_params(axis="x", rotation=45)
        for label in ax.get_xticklabels():
            label.set_horizontalalignment("right")
    fig.suptitle(f"{title} (k = {k}, {frame['dataset'].nunique()} datasets, {frame['seed'].nunique()} seeds, ±2σ)")
    return save(fig, stem)


def figure_k(frame: pd.DataFrame, methods: list[str], stem: str):
    """Figure 4 (centre): test MAE against k for classification on the codec of section 3.2 (soft
    binning) and the pre-trained codec, averaged over datasets, ±2σ over seeds."""
    data = frame[frame["method"].isin(methods)].copy()
    data = data.groupby(["method", "k", "seed"])["test_mae"].mean().reset_index()
    data["Method"] = data["method"].map(short_name)
    fig, ax = plt.subplots(figsize=(6, 4))
    sns.lineplot(
        data=data, x="k", y="test_mae", hue="Method", marker="o", errorbar=("sd", 2), ax=ax, palette="colorblind"
    )
    ax.set_xlabel("k (number of classes)")
    ax.set_ylabel("test MAE, mean over datasets")
    ax.set_title(
        f"Figure 4 (centre): impact of k ({frame['dataset'].nunique()} datasets, {frame['seed'].nunique()} seeds, ±2σ)"
    )
    return save(fig, stem)


def figure_lambda_kl(sweeps: pd.DataFrame, dataset: str, code: str, stem: str):
    """Figure 4 (bottom): test MAE of end to end against lambda_KL (lambda_pred = 1) on one dataset,
    one line per k, ±2σ over the sweep seeds."""
    data = sweeps[(sweeps["param"] == "lambda_kl") & (sweeps["dataset"] == dataset)].copy()
    data["k"] = data["k"].astype(int).map(lambda k: f"k = {k}")
    fig, ax = plt.subplots(figsize=(6, 4))
    sns.lineplot(
        data=data, x="lambda_kl", y="test_mae", hue="k", marker="o", errorbar=("sd", 2), ax=ax, palette="colorblind"
    )
    ax.set_xscale("log")
    ax.set_xlabel(r"$\lambda_{KL}$ ($\lambda_{pred} = 1$)")
    ax.set_ylabel("test MAE")
    ax.set_title(f"Figure 4 (bottom): end to end on {code}, {data['seed'].nunique()} sweep seeds, ±2σ")
    return save(fig, stem)
