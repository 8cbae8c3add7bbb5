"""A run against the paper: its Tables 3-6 (paper_numbers.csv, next to this module) beside ours.

For every dataset of the run that the paper reports (matched by its code, config key
``datasets.<key>.code``), every configuration of our Tables 3-5 and each metric (test MAE, rMSE,
R^2): the paper's mean ± its printed uncertainty, ours (mean ± 2σ over the seeds, as in our Tables
3-5), the difference (ours - paper), whether it exceeds 2σ, and our paired Wilcoxon test against the
reference method (least squares), as Tables 3-5 mark it (significance.py). A linear-regression
reference row (linear_regression.py) stands beside the paper's least squares. Table 6: the λ_KL our
sweep selected against the paper's, where the sweep ran.

σ of a difference combines three independent errors: the paper's σ (its ± / 2: the paper calls its ±
a 2σ confidence interval), ours (our 2σ / 2; none for the linear-regression reference) and the
rounding of the paper's mean to 3 decimals (uniform within ±0.0005: σ = 0.0005/√3). Both σ are the
spreads the tables print, not standard errors of a mean, so a difference beyond 2σ exceeds the seeds'
own spread: the two setups give different numbers, beyond noise.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..io import atomic_write_text
from ..train.settings import Configuration
from .significance import marker, paired_test, paired_tests

PAPER_NUMBERS = Path(__file__).with_name("paper_numbers.csv")
PAPER_COLUMNS = ("table", "metric", "code", "method", "k", "mean", "pm")
METRICS = {"mae": "MAE", "rmse": "rMSE", "r2": "R²"}  # Tables 3, 4, 5
HIGHER_IS_BETTER = {"mae": False, "rmse": False, "r2": True}
ROUNDING = 0.0005  # half the last decimal the paper prints
ROUNDING_SIGMA = ROUNDING / math.sqrt(3)
LAMBDA_TOLERANCE = 0.01  # relative: the paper prints 3 decimals of a log-spaced grid (3.163 for 10^0.5)
LINEAR_REGRESSION = "linear_regression"  # the reference row's configuration in the CSV
LINEAR_REGRESSION_LABEL = "Linear regression (reference)"
COLUMNS = [
    "code",
    "dataset",
    "configuration",
    "label",
    "metric",
    "paper_configuration",  # the paper's row the paper columns come from
    "paper_mean",
    "paper_pm",
    "ours_mean",
    "ours_two_sigma",
    "seeds",
    "runs",
    "difference",  # ours - paper
    "sigma",
    "differs_by_2sigma",
    "reference_difference",  # ours - the reference method's, mean over paired seeds
    "p_value",  # Wilcoxon signed-rank, paired by seed, against the reference method
    "vs_reference",  # " (+)", " (-)" or "" at alpha, as in Tables 3-5
]


def load_paper_numbers(path=PAPER_NUMBERS) -> pd.DataFrame:
    """The paper's cells, a row each, with its configuration label (``end_to_end-k25``); a file
    without the expected columns or with a cell that is no number raises an error naming it."""
    try:
        frame = pd.read_csv(path, comment="#")
    except FileNotFoundError:
        raise
    except Exception as e:
        raise ValueError(f"{path}: not a table of the paper's numbers ({type(e).__name__}: {e})") from e
    missing = [c for c in PAPER_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: no column {', '.join(missing)} (expected {', '.join(PAPER_COLUMNS)})")
    for column in ("table", "k", "mean", "pm"):
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = frame[values.isna() & frame[column].notna()]
        if len(bad):
            r = bad.iloc[0]
            raise ValueError(
                f"{path}: column {column!r} holds {r[column]!r}, not a number ({r['metric']} of {r['method']} "
                f"on {r['code']})"
            )
        frame[column] = values
    unknown = sorted(set(frame["metric"]) - set(METRICS) - {"lambda_kl"})
    if unknown:
        raise ValueError(f"{path}: unknown metric {', '.join(map(str, unknown))}")
    frame["k"] = frame["k"].astype("Int64")
    frame["configuration"] = [m if pd.isna(k) else f"{m}-k{k}" for m, k in zip(frame["method"], frame["k"])]
    duplicated = frame[frame.duplicated(["metric", "code", "configuration"])]
    if len(duplicated):
        r = duplicated.iloc[0]
        raise ValueError(f"{path}: {r['metric']} of {r['configuration']} on {r['code']} is given twice")
    return frame


def paper_datasets(codes: dict[str, str], datasets: list[str], paper: pd.DataFrame) -> list[str]:
    """The run's datasets whose code the paper reports, in the run's order."""
    return [d for d in datasets if codes.get(d, d) in set(paper["code"])]


def _combined_sigma(paper_pm: float, ours_two_sigma: float) -> float:
    return math.sqrt((paper_pm / 2) ** 2 + (ours_two_sigma / 2) ** 2 + ROUNDING_SIGMA**2)


def compare(
    metrics: pd.DataFrame,
    paper: pd.DataFrame,
    codes: dict[str, str],
    datasets: list[str],
    configurations: list[str],
    labels: dict[str, str] | None = None,
    reference: str = "least_squares",
    alpha: float = 0.05,
    linear: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """A row per (paper dataset, configuration, metric) with the columns COLUMNS; the datasets the
    paper does not report give no rows. ``metrics``: metrics.parquet; ``configurations``: the rows of
    Tables 3-5; ``linear``: the linear-regression reference (linear_regression.py), a row per dataset,
    or None."""
    from .tables import configuration_order, summarise

    labels = labels or {}
    shown = paper_datasets(codes, datasets, paper)
    frame = metrics[metrics["dataset"].isin(shown) & metrics["configuration"].isin(configurations)]
    if frame.empty:
        return pd.DataFrame(columns=COLUMNS)
    cell = paper.set_index(["metric", "code", "configuration"])
    summary = {m: summarise(frame, m).set_index(["configuration", "dataset"]) for m in METRICS}
    tests = {m: paired_tests(frame, m, reference) for m in METRICS}
    rows = []
    for dataset in shown:
        if linear is not None and dataset in set(linear["dataset"]):
            for metric in METRICS:
                rows.append(_with_paper(_linear_row(dataset, metric, linear, frame, reference, alpha, codes), cell))
        for configuration in configuration_order(frame[frame["dataset"] == dataset]):
            for metric in METRICS:
                s = summary[metric].loc[(configuration, dataset)]
                test = tests[metric].get((configuration, dataset))
                row = {
                    "code": codes.get(dataset, dataset),
                    "dataset": dataset,
                    "configuration": configuration,
                    "label": labels.get(configuration) or Configuration.parse(configuration).display(),
                    "metric": metric,
                    "paper_configuration": configuration,
                    "ours_mean": s["mean"],
                    "ours_two_sigma": s["two_sigma"],
                    "seeds": int(s["seeds"]),
                    "runs": int(s["runs"]),
                    **_tested(test, alpha, metric),
                }
                rows.append(_with_paper(row, cell))
    return pd.DataFrame(rows, columns=COLUMNS)


def _tested(test: dict | None, alpha: float, metric: str) -> dict:
    return {
        "reference_difference": test["mean_difference"] if test else math.nan,
        "p_value": test["p_value"] if test else math.nan,
        "vs_reference": marker(test, alpha, HIGHER_IS_BETTER[metric]) if test else "",
    }


def _with_paper(row: dict, cell: pd.DataFrame) -> dict:
    key = (row["metric"], row["code"], row["paper_configuration"])
    if key in cell.index:
        paper_mean, paper_pm = float(cell.loc[key, "mean"]), float(cell.loc[key, "pm"])
        difference = row["ours_mean"] - paper_mean
        sigma = _combined_sigma(paper_pm, row["ours_two_sigma"])
    else:
        paper_mean = paper_pm = difference = sigma = math.nan
    return {
        **row,
        "paper_mean": paper_mean,
        "paper_pm": paper_pm,
        "difference": difference,
        "sigma": sigma,
        "differs_by_2sigma": bool(abs(difference) > 2 * sigma),  # NaN (no paper cell, one seed): False
    }


def _linear_row(dataset, metric, linear, frame, reference, alpha, codes) -> dict:
    """The linear-regression reference, with the paper's least squares in its paper columns: no spread
    (no seeds); tested against the reference method's seeds (Wilcoxon on their differences to it)."""
    value = float(linear.loc[linear["dataset"] == dataset, f"test_{metric}"].iloc[0])
    runs = frame[(frame["dataset"] == dataset) & (frame["configuration"] == reference)]
    seeds = runs[f"test_{metric}"].dropna().to_numpy()
    test = paired_test(np.full(len(seeds), value), seeds) if len(seeds) >= 2 else None
    return {
        "code": codes.get(dataset, dataset),
        "dataset": dataset,
        "configuration": LINEAR_REGRESSION,
        "label": LINEAR_REGRESSION_LABEL,
        "metric": metric,
        "paper_configuration": "least_squares",
        "ours_mean": value,
        "ours_two_sigma": 0.0,
        "seeds": 0,
        "runs": 0,
        **_tested(test, alpha, metric),
    }


def compare_lambda_kl(
    selected: pd.DataFrame, paper: pd.DataFrame, codes: dict[str, str], datasets: list[str]
) -> pd.DataFrame:
    """Table 6: a row per (paper dataset, k) of our λ_KL sweep (``selected``: table6_lambda_kl.csv,
    columns dataset, k, lambda_kl) with the paper's value; ``differs_by_2sigma`` here means another
    value of the grid (more than LAMBDA_TOLERANCE apart, relative)."""
    cell = paper[paper["metric"] == "lambda_kl"].set_index(["code", "configuration"])["mean"]
    rows = []
    for dataset in paper_datasets(codes, datasets, paper):
        code = codes.get(dataset, dataset)
        for r in selected[selected["dataset"] == dataset].sort_values("k").itertuples():
            configuration = f"end_to_end-k{int(r.k)}"
            paper_value = float(cell.get((code, configuration), math.nan))
            rows.append(
                {
                    "code": code,
                    "dataset": dataset,
                    "configuration": configuration,
                    "label": Configuration("end_to_end", int(r.k)).display(),
                    "metric": "lambda_kl",
                    "paper_configuration": configuration,
                    "paper_mean": paper_value,
                    "ours_mean": float(r.lambda_kl),
                    "difference": float(r.lambda_kl) - paper_value,
                    "differs_by_2sigma": not math.isnan(paper_value)
                    and not math.isclose(r.lambda_kl, paper_value, rel_tol=LAMBDA_TOLERANCE),
                }
            )
    return pd.DataFrame(rows, columns=COLUMNS)


def _paper_cell(r) -> str:
    return "—" if math.isnan(r.paper_mean) else f"{r.paper_mean:.3f} ± {r.paper_pm:.2e}"


def _ours_cell(r) -> str:
    if r.configuration == LINEAR_REGRESSION:
        return f"{r.ours_mean:.4f}{r.vs_reference}"
    held = f" ({r.seeds}/{r.runs})" if r.seeds < r.runs else ""
    if r.seeds == 0:
        return f"failed{held}"
    spread = "n/a" if math.isnan(r.ours_two_sigma) else f"{r.ours_two_sigma:.1e}"
    return f"{r.ours_mean:.4f} ± {spread}{held}{r.vs_reference}"


def _difference_cell(r) -> str:
    if math.isnan(r.difference):
        return "—"
    return f"{r.difference:+.4f}" + (" (>2σ)" if r.differs_by_2sigma else "")


def _dataset_table(rows: pd.DataFrame) -> str:
    header = ["Method"] + [f"{METRICS[m]} {part}" for m in METRICS for part in ("paper", "ours", "ours − paper")]
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for _, group in rows.groupby("configuration", sort=False):
        by_metric = {r.metric: r for r in group.itertuples()}
        cells = [group["label"].iloc[0]]
        for metric in METRICS:
            r = by_metric.get(metric)
            cells += [_paper_cell(r), _ours_cell(r), _difference_cell(r)] if r else ["", "", ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _best_line(rows: pd.DataFrame) -> str:
    """Which configuration has the lowest test MAE, ours and the paper's (among this run's
    configurations), and where end to end at its best ranks in each."""
    mae = rows[(rows["metric"] == "mae") & (rows["configuration"] != LINEAR_REGRESSION)]
    parts = []
    for who, column, digits in (("ours", "ours_mean", 4), ("paper", "paper_mean", 3)):
        ranked = mae.dropna(subset=[column]).sort_values(column, kind="stable")
        if ranked.empty:
            continue
        best = ranked.iloc[0]
        text = f"{who}: {best['label']} ({best[column]:.{digits}f})"
        e2e = ranked[ranked["configuration"].str.startswith("end_to_end")]
        if len(e2e):
            rank = int((ranked[column] < e2e[column].iloc[0]).sum()) + 1
            text += f", end to end at its best ({e2e['label'].iloc[0]}) ranks {rank} of {len(ranked)}"
        parts.append(text)
    return "Lowest test MAE, " + "; ".join(parts) + "." if parts else ""


def _lambda_table(rows: pd.DataFrame) -> str:
    codes = list(dict.fromkeys(rows["code"]))
    ks = sorted({int(c.rsplit("-k", 1)[1]) for c in rows["configuration"]})
    cell = rows.set_index(["code", "configuration"])
    lines = ["| | " + " | ".join(codes) + " |", "|---" * (len(codes) + 1) + "|"]
    for k in ks:
        cells = []
        for code in codes:
            key = (code, f"end_to_end-k{k}")
            if key not in cell.index:
                cells.append("")
                continue
            r = cell.loc[key]
            paper = "—" if math.isnan(r["paper_mean"]) else f"{r['paper_mean']:.3f}"
            cells.append(f"{paper} / {r['ours_mean']:.4g}" + (" (≠)" if r["differs_by_2sigma"] else ""))
        lines.append(f"| k = {k} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown(
    table: pd.DataFrame,
    lambda_rows: pd.DataFrame | None,
    codes: dict[str, str],
    datasets: list[str],
    paper: pd.DataFrame,
    note: str = "",
) -> str:
    """The comparison as Markdown: a caption, a table per dataset, then Table 6 (``lambda_rows``;
    None: the λ_KL sweep did not run). One line when no dataset of the run is in the paper."""
    shown = paper_datasets(codes, datasets, paper)
    if not shown:
        names = ", ".join(f"{d} ({codes.get(d, d)})" for d in datasets) or "none"
        return (
            f"No dataset of this run is in the paper's Tables 3-6 (its codes: {', '.join(dict.fromkeys(paper['code']))}; "
            f"this run's: {names}): nothing to compare.\n"
        )
    caption = [
        "Comparison with the paper's Tables 3-5 (test MAE, rMSE, R² on the [0, 1] target scale) and Table 6 (λ_KL).",
        "Paper: mean ± its printed 2σ; ours: mean ± 2σ over the seeds ((n/N): n of N seeds did not fail).",
        "ours − paper is marked (>2σ) where it exceeds 2σ, σ combining both printed σ and the rounding of the "
        f"paper's means to 3 decimals (σ = {ROUNDING_SIGMA:.2g}).",
        note,
        f"{LINEAR_REGRESSION_LABEL}: scikit-learn's LinearRegression fitted on the same prepared training split "
        "(no seeds); its paper columns hold the paper's Least Squares, its (+)/(-) compares the value with the "
        "seeds of the method the others are tested against.",
    ]
    out = [" ".join(part for part in caption if part), ""]
    for dataset in shown:
        rows = table[table["dataset"] == dataset]
        out += [f"## {codes.get(dataset, dataset)} ({dataset})", "", _dataset_table(rows), "", _best_line(rows), ""]
    out += ["## λ_KL (Table 6)", ""]
    if lambda_rows is None:
        out.append(
            "The λ_KL sweep did not run (config key sweeps.lambda_kl.enabled, with end_to_end among the methods)."
        )
    elif lambda_rows.empty:
        out.append("The λ_KL sweep selected no value on the datasets of the paper.")
    else:
        out += [
            "The λ_KL of end to end (λ_pred = 1) with the lowest mean validation MAE, paper / ours; (≠): another "
            f"value (more than {LAMBDA_TOLERANCE:.0%} apart).",
            "",
            _lambda_table(lambda_rows),
        ]
    return "\n".join(out) + "\n"


def write_paper_comparison(
    stem: str,
    metrics: pd.DataFrame,
    codes: dict[str, str],
    datasets: list[str],
    configurations: list[str],
    labels: dict[str, str] | None = None,
    reference: str = "least_squares",
    alpha: float = 0.05,
    linear: pd.DataFrame | None = None,
    selected_lambda_kl: pd.DataFrame | None = None,
    paper_path=PAPER_NUMBERS,
) -> pd.DataFrame:
    """Write ``stem``.md and ``stem``.csv (every row: metrics, then λ_KL); returns the rows."""
    from .tables import significance_note

    paper = load_paper_numbers(paper_path)
    table = compare(metrics, paper, codes, datasets, configurations, labels, reference, alpha, linear)
    lambda_rows = None if selected_lambda_kl is None else compare_lambda_kl(selected_lambda_kl, paper, codes, datasets)
    shown = metrics[metrics["dataset"].isin(paper_datasets(codes, datasets, paper))]
    note = significance_note(shown, alpha, reference) if len(shown) else ""
    atomic_write_text(f"{stem}.md", markdown(table, lambda_rows, codes, datasets, paper, note))
    parts = [t for t in (table, lambda_rows) if t is not None and len(t)]
    both = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=COLUMNS)
    atomic_write_text(f"{stem}.csv", both.to_csv(index=False))
    return both
