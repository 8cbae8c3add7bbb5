"""Tables 3-5 of the paper: test metric per configuration (rows) and dataset (columns), mean +- 2 sigma
over seeds, as Markdown, CSV and LaTeX."""

from __future__ import annotations

import math

import pandas as pd

from ..io import atomic_write_text
from ..methods import METHODS
from ..train.settings import Configuration

METRICS = {
    "mae": ("MAE", "lower is better", 3),
    "rmse": ("rMSE", "lower is better", 4),
    "r2": ("R2", "higher is better", 5),
}


def configuration_order(frame: pd.DataFrame) -> list[str]:
    """Rows in the paper's order: methods as in METHODS, then k ascending."""
    present = {c: Configuration.parse(c) for c in frame["configuration"].unique()}
    rank = {name: i for i, name in enumerate(METHODS)}
    return sorted(present, key=lambda c: (rank[present[c].method], present[c].k or 0))


def dataset_order(frame: pd.DataFrame, datasets: list[str] | None = None) -> list[str]:
    present = list(dict.fromkeys(frame["dataset"]))
    return [d for d in datasets if d in present] if datasets else present


def summarise(frame: pd.DataFrame, metric: str, split: str = "test") -> pd.DataFrame:
    """Mean, 2 sigma (sample standard deviation over seeds, ddof=1) and seed count per cell, over
    the runs that did not fail (train/failures.py); ``runs`` counts every run of the cell and
    ``failed`` the runs left out."""
    column = f"{split}_{metric}"
    failed = frame["failed"].astype(bool) if "failed" in frame.columns else frame[column].isna()
    data = frame.assign(_value=frame[column].where(~failed), _failed=failed)
    grouped = data.groupby(["configuration", "dataset"])
    out = pd.DataFrame(
        {
            "mean": grouped["_value"].mean(),
            "two_sigma": 2 * grouped["_value"].std(ddof=1),
            "seeds": grouped["_value"].count(),
            "runs": grouped["_value"].size(),
            "failed": grouped["_failed"].sum().astype(int),
        }
    ).reset_index()
    out.insert(0, "metric", metric)
    return out


def format_cell(
    mean: float, two_sigma: float, latex: bool = False, seeds: int | None = None, runs: int | None = None
) -> str:
    """ "mean ± 2σ"; a cell that holds fewer seeds than it has runs (the others failed) ends in
    "(seeds/runs)", and a cell whose every run failed reads "failed (0/runs)"."""
    held = f" ({seeds}/{runs})" if seeds is not None and runs is not None and seeds < runs else ""
    if seeds == 0 and runs:
        return f"failed{held}"
    if math.isnan(mean):
        return "n/a"
    spread = "n/a" if math.isnan(two_sigma) else f"{two_sigma:.2e}"
    if latex:
        if spread != "n/a":
            mantissa, exponent = spread.split("e")
            spread = f"{mantissa}e^{{{int(exponent)}}}"
        return f"${mean:.3f} \\pm {spread}$" + held
    return f"{mean:.3f} ± {spread}" + held


def failure_note(frame: pd.DataFrame, codes: dict[str, str], limit: int = 8) -> str:
    """For a caption: which runs are missing from their cells and why."""
    if "failed" not in frame.columns or not frame["failed"].any():
        return ""
    failed = frame[frame["failed"].astype(bool)]
    lines = [
        f"{codes.get(r.dataset, r.dataset)} {r.configuration} seed {r.seed} ({r.failure})" for r in failed.itertuples()
    ]
    more = f"; and {len(lines) - limit} more (see metrics.parquet, column failure)" if len(lines) > limit else ""
    return (
        f"A cell marked (n/N) holds n of its N seeds: {len(lines)} run(s) failed and are left out (a run fails without a "
        f"finite validation MAE, or with one no better than predicting the training mean): "
        + "; ".join(lines[:limit])
        + more
        + "."
    )


def pivot(
    summary: pd.DataFrame,
    frame: pd.DataFrame,
    codes: dict[str, str],
    datasets: list[str] | None,
    latex: bool,
    markers: dict | None = None,
    labels: dict[str, str] | None = None,
) -> pd.DataFrame:
    rows = configuration_order(frame)
    cols = dataset_order(frame, datasets)
    cells = {
        (r.configuration, r.dataset): format_cell(r.mean, r.two_sigma, latex, r.seeds, r.runs)
        for r in summary.itertuples()
    }
    markers = markers or {}
    table = pd.DataFrame(
        [[cells.get((c, d), "") + markers.get((c, d), "") for d in cols] for c in rows],
        index=[(labels or {}).get(c) or Configuration.parse(c).display() for c in rows],
        columns=[codes.get(d, d) for d in cols],
    )
    table.index.name = "Method"
    return table


def write_table(
    frame: pd.DataFrame,
    metric: str,
    stem: str,
    codes: dict[str, str],
    datasets: list[str] | None = None,
    markers: dict | None = None,
    note: str = "",
    labels: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Write ``stem``.md, .csv and .tex for one metric; returns the summary (one row per cell).
    ``labels`` gives each configuration's row label (default: its method's label and k)."""
    name, direction, number = METRICS[metric]
    summary = summarise(frame, metric)
    seeds = sorted(set(summary["runs"]))
    note = " ".join(part for part in (note, failure_note(frame, codes)) if part)
    caption = (
        f"Table {number}: test {name}, mean ± 2σ over {'/'.join(map(str, seeds))} seeds ({direction}). {note}".strip()
    )
    md = pivot(summary, frame, codes, datasets, latex=False, markers=markers, labels=labels)
    atomic_write_text(f"{stem}.md", f"{caption}\n\n{md.to_markdown()}\n")
    tidy = summary.assign(code=summary["dataset"].map(lambda d: codes.get(d, d)))
    atomic_write_text(f"{stem}.csv", tidy.to_csv(index=False))
    tex = pivot(
        summary,
        frame,
        codes,
        datasets,
        latex=True,
        markers={k: v.replace("*", "$^*$") for k, v in (markers or {}).items()},
        labels=labels,
    )
    body = tex.to_latex(escape=False, column_format="l" + "c" * len(tex.columns))
    atomic_write_text(f"{stem}.tex", f"% {caption}\n{body}")
    return summary


def significance_note(frame: pd.DataFrame, alpha: float, reference: str) -> str:
    from .significance import smallest_p_value

    seeds = int(frame.groupby(["configuration", "dataset"])["seed"].nunique().min())
    note = (
        f"(+)/(-): significantly better/worse than {METHODS[reference].label} on the same dataset and seeds "
        f"(two-sided Wilcoxon signed-rank test, p < {alpha:g})."
    )
    if smallest_p_value(seeds) >= alpha:
        note += (
            f" With {seeds} seeds no p-value can fall below {smallest_p_value(seeds):.3g}, so no cell can be marked."
        )
    return note


def write_lambda_table(
    sweeps: pd.DataFrame, stem: str, codes: dict[str, str], datasets: list[str] | None = None
) -> pd.DataFrame:
    """Table 6: the lambda_KL with the lowest mean validation MAE, per dataset (columns) and k (rows),
    for end to end with lambda_pred = 1."""
    from ..train.selection import select_best

    data = sweeps[sweeps["param"] == "lambda_kl"]
    rows = []
    for (dataset, k), group in data.groupby(["dataset", "k"]):
        chosen = select_best(group, "lambda_kl")
        rows.append(
            {
                "dataset": dataset,
                "code": codes.get(dataset, dataset),
                "k": int(k),
                "lambda_kl": chosen["value"],
                "mean_val_mae": chosen["mean_val_mae"][repr(chosen["value"])],
                "seeds": len(chosen["seeds"]),
            }
        )
    best = pd.DataFrame(rows)
    cols = dataset_order(data, datasets)
    grid = best.pivot(index="k", columns="dataset", values="lambda_kl").reindex(columns=cols)
    grid.columns = [codes.get(d, d) for d in cols]
    grid.index = [f"k = {k}" for k in grid.index]
    grid.index.name = ""
    seeds = int(best["seeds"].min()) if len(best) else 0
    lr_note = "at the selected learning rate" if "lr" in data.columns else ""
    failed = int(data["failed"].astype(bool).sum()) if "failed" in data.columns else 0
    failed_note = (
        f" {failed} sweep run(s) failed and are left out of the means; a value whose runs failed is chosen "
        f"only where every value has failed runs (see sweeps.parquet, column failure)."
        if failed
        else ""
    )
    caption = (
        f"Table 6: lambda_KL with the lowest mean validation MAE over {seeds} sweep seeds, end to end with "
        f"lambda_pred = 1 {lr_note}; grid {sorted(data['lambda_kl'].unique().round(4).tolist())}.{failed_note}"
    )
    atomic_write_text(f"{stem}.md", f"{caption}\n\n{grid.map(lambda v: f'{v:.3f}').to_markdown()}\n")
    atomic_write_text(f"{stem}.csv", best.to_csv(index=False))
    tex = grid.map(lambda v: f"${v:.3f}$").to_latex(escape=False, column_format="l" + "c" * len(grid.columns))
    atomic_write_text(f"{stem}.tex", f"% {caption}\n{tex}")
    return best
