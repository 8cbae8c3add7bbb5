"""Tables 3-5 of the paper: test metric per configuration (rows) and dataset (columns), mean +- 2 sigma
over seeds, as Markdown, CSV and LaTeX."""

from __future__ import annotations

import math

import pandas as pd

from ..io import atomic_write_text
from ..methods import METHODS
from .settings import Configuration

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
    """Mean, 2 sigma (sample standard deviation over seeds, ddof=1) and seed count per cell."""
    column = f"{split}_{metric}"
    grouped = frame.groupby(["configuration", "dataset"])[column]
    out = pd.DataFrame({"mean": grouped.mean(), "two_sigma": 2 * grouped.std(ddof=1), "seeds": grouped.count(),
                        "diverged": grouped.apply(lambda s: int(s.isna().sum()))}).reset_index()
    out.insert(0, "metric", metric)
    return out


def format_cell(mean: float, two_sigma: float, latex: bool = False) -> str:
    if math.isnan(mean):
        return "n/a"
    spread = "n/a" if math.isnan(two_sigma) else f"{two_sigma:.2e}"
    if latex:
        if spread != "n/a":
            mantissa, exponent = spread.split("e")
            spread = f"{mantissa}e^{{{int(exponent)}}}"
        return f"${mean:.3f} \\pm {spread}$"
    return f"{mean:.3f} ± {spread}"


def pivot(summary: pd.DataFrame, frame: pd.DataFrame, codes: dict[str, str], datasets: list[str] | None, latex: bool,
          markers: dict | None = None) -> pd.DataFrame:
    rows = configuration_order(frame)
    cols = dataset_order(frame, datasets)
    cells = {(r.configuration, r.dataset): format_cell(r.mean, r.two_sigma, latex) for r in summary.itertuples()}
    markers = markers or {}
    table = pd.DataFrame(
        [[cells.get((c, d), "") + markers.get((c, d), "") for d in cols] for c in rows],
        index=[Configuration.parse(c).display for c in rows],
        columns=[codes.get(d, d) for d in cols],
    )
    table.index.name = "Method"
    return table


def write_table(frame: pd.DataFrame, metric: str, stem: str, codes: dict[str, str], datasets: list[str] | None = None,
                markers: dict | None = None, note: str = "") -> pd.DataFrame:
    """Write ``stem``.md, .csv and .tex for one metric; returns the summary (one row per cell)."""
    name, direction, number = METRICS[metric]
    summary = summarise(frame, metric)
    seeds = sorted(set(summary["seeds"]))
    caption = f"Table {number}: test {name}, mean ± 2σ over {'/'.join(map(str, seeds))} seeds ({direction}). {note}".strip()
    md = pivot(summary, frame, codes, datasets, latex=False, markers=markers)
    atomic_write_text(f"{stem}.md", f"{caption}\n\n{md.to_markdown()}\n")
    tidy = summary.assign(code=summary["dataset"].map(lambda d: codes.get(d, d)))
    atomic_write_text(f"{stem}.csv", tidy.to_csv(index=False))
    tex = pivot(summary, frame, codes, datasets, latex=True, markers={k: v.replace("*", "$^*$") for k, v in (markers or {}).items()})
    body = tex.to_latex(escape=False, column_format="l" + "c" * len(tex.columns))
    atomic_write_text(f"{stem}.tex", f"% {caption}\n{body}")
    return summary
