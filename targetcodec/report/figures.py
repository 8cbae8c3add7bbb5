"""Figures 3-7 of the paper from the aggregated metrics (seaborn), as PNG and PDF."""

from __future__ import annotations

import textwrap

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


def averaged_over_datasets(frame: pd.DataFrame, metric: str, k: int, datasets: list[str] | None = None) -> pd.DataFrame:
    """Per method and seed, the test metric averaged over datasets (Figures 4 top and 5); the spread
    over seeds gives the 2 sigma intervals. Every mean is over the same datasets, ``complete_datasets``:
    a failed run (NaN metrics) would otherwise drop its dataset from its own seed's mean only, and the
    points would mix means over different datasets. ``datasets``: that set, where the caller has it."""
    data = at_k(frame, k)
    data = data[data["dataset"].isin(datasets if datasets is not None else complete_datasets(data, [metric]))]
    return data.groupby(["Method", "seed"], observed=True)[f"test_{metric}"].mean().reset_index()


def complete_datasets(data: pd.DataFrame, metrics: list[str]) -> list[str]:
    """The datasets on which every (method, seed) that ``data`` shows has a run with these test
    metrics: a dataset with a failed run, of any method and seed, is left out for all of them."""
    shown = set(data[["Method", "seed"]].drop_duplicates().itertuples(index=False))
    finite = data.dropna(subset=[f"test_{m}" for m in metrics])
    return [
        dataset
        for dataset in data["dataset"].unique()
        if set(finite.loc[finite["dataset"] == dataset, ["Method", "seed"]].itertuples(index=False)) == shown
    ]


def left_out_note(frame: pd.DataFrame, metrics: list[str], k: int, codes: dict[str, str], limit: int = 4) -> str:
    """For the figure: the datasets left out of Figures 4 (top) and 5, and the runs that failed there."""
    data = at_k(frame, k)
    kept = complete_datasets(data, metrics)
    left_out = [d for d in data["dataset"].unique() if d not in kept]
    if not left_out:
        return ""
    missing = data[data["dataset"].isin(left_out)].copy()
    missing = missing[missing[[f"test_{m}" for m in metrics]].isna().any(axis=1)]
    runs = [f"{codes.get(r.dataset, r.dataset)} {r.configuration} seed {r.seed}" for r in missing.itertuples()]
    more = f" and {len(runs) - limit} more" if len(runs) > limit else ""
    return (
        f"Left out of every mean, for every method and seed: {', '.join(codes.get(d, d) for d in left_out)}, "
        f"where {len(runs)} run(s) shown failed ({'; '.join(runs[:limit])}{more})."
    )


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


def figure_averaged(
    frame: pd.DataFrame,
    metrics: list[str],
    k: int,
    stem: str,
    title: str,
    codes: dict[str, str] | None = None,
    log=None,
):
    """Figure 4 top (MAE) and Figure 5 (rMSE, R^2): averaged over datasets, ±2σ over seeds; a dataset
    where a run shown failed is left out of every mean, and the figure says so below its panels."""
    codes = codes or {}
    data = at_k(frame, k)
    datasets = complete_datasets(data, metrics)
    note = left_out_note(frame, metrics, k, codes)
    if note and log:
        log(note)
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 4), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        data = averaged_over_datasets(frame, metric, k, datasets)
        if data.empty:  # every dataset has a failed run: nothing to average
            ax.text(0.5, 0.5, "no dataset without a failed run", ha="center", va="center", transform=ax.transAxes)
            continue
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
    fig.suptitle(f"{title} (k = {k}, {len(datasets)} datasets, {frame['seed'].nunique()} seeds, ±2σ)")
    if note:  # below the panels' rotated method names
        fig.canvas.draw()
        below = min(ax.get_tightbbox().transformed(fig.transFigure.inverted()).y0 for ax in axes[0])
        fig.text(0.01, below - 0.02, textwrap.fill(note, 60 * len(metrics) + 40), fontsize="small", va="top")
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
