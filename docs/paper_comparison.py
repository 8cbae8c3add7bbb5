"""The per-dataset comparison of docs/results.md from a run's metrics.parquet: test MAE against the
paper's Table 3 (docs/paper_table3_mae.csv), which configurations beat least squares by more than
2 sigma and by the paired Wilcoxon test, and which is the best.

    .venv/bin/python docs/paper_comparison.py results/comparison/metrics.parquet > comparison.md

sigma is the standard error of the mean paired difference (configuration minus least squares, per
seed); "beats by 2 sigma" means a mean gain larger than 2 sigma. Failed runs (NaN) pair with nothing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from targetcodec.report.significance import paired_test

PAPER = Path(__file__).with_name("paper_table3_mae.csv")


def compare(metrics: pd.DataFrame, paper: pd.DataFrame, reference: str = "least_squares") -> pd.DataFrame:
    """A row per (dataset, configuration): paper MAE, ours (mean, std, runs), the paired gain over the
    reference, its 2-sigma and Wilcoxon verdicts."""
    rows = []
    order = {c: i for i, c in enumerate(dict.fromkeys(paper["configuration"]))}  # Table 3's rows, others last
    metrics = metrics.sort_values("configuration", key=lambda c: c.map(order).fillna(len(order)), kind="stable")
    for (code, configuration), group in metrics.groupby(["code", "configuration"], sort=False):
        ref = metrics[(metrics["code"] == code) & (metrics["configuration"] == reference)]
        paired = (
            group.set_index("seed")["test_mae"]
            .to_frame("mae")
            .join(ref.set_index("seed")["test_mae"].rename("ref"), how="inner")
            .dropna()
        )
        gain = paired["ref"] - paired["mae"]  # positive: better than least squares
        se = gain.std(ddof=1) / np.sqrt(len(gain)) if len(gain) > 1 else np.nan
        test = paired_test(paired["mae"].to_numpy(), paired["ref"].to_numpy())
        match = paper[(paper["code"] == code) & (paper["configuration"] == configuration)]
        rows.append(
            {
                "code": code,
                "configuration": configuration,
                "paper": float(match["mae"].iloc[0]) if len(match) else np.nan,
                "mean": group["test_mae"].mean(),
                "std": group["test_mae"].std(ddof=1),
                "runs": f"{group['test_mae'].notna().sum()}/{len(group)}",
                "gain": gain.mean() if configuration != reference else np.nan,
                "beats_2sigma": configuration != reference and gain.mean() > 2 * se,
                "worse_2sigma": configuration != reference and -gain.mean() > 2 * se,
                "p_value": test["p_value"],
            }
        )
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame, alpha: float = 0.05) -> str:
    out = []
    order = list(dict.fromkeys(table["configuration"]))  # compare() puts them in Table 3's order
    codes = list(dict.fromkeys(table["code"]))
    out.append("| configuration | " + " | ".join(codes) + " |")
    out.append("|---|" + "---|" * len(codes))
    cell = table.set_index(["configuration", "code"])
    best = table.loc[table.groupby("code")["mean"].idxmin()].set_index("code")["configuration"]
    for configuration in order:
        cells = []
        for code in codes:
            if (configuration, code) not in cell.index:
                cells.append("")
                continue
            r = cell.loc[(configuration, code)]
            mark = " (+)" if r["beats_2sigma"] and r["p_value"] < alpha else ""
            mark += " (-)" if r["worse_2sigma"] and r["p_value"] < alpha else ""
            mean = f"**{r['mean']:.4f}**" if best[code] == configuration else f"{r['mean']:.4f}"
            runs = "" if r["runs"].split("/")[0] == r["runs"].split("/")[1] else f" ({r['runs']})"
            paper = "—" if np.isnan(r["paper"]) else f"{r['paper']:.3f}"
            cells.append(f"{paper} / {mean} ± {r['std']:.4f}{runs}{mark}")
        out.append(f"| {configuration} | " + " | ".join(cells) + " |")
    out.append("")
    for code in codes:
        rows = table[table["code"] == code]
        beats = rows[rows["beats_2sigma"]]
        both = beats[beats["p_value"] < alpha]
        worse = rows[rows["worse_2sigma"] & (rows["p_value"] < alpha)]
        e2e = rows[rows["configuration"].str.startswith("end_to_end")]
        best_e2e = e2e.loc[e2e["mean"].idxmin()] if len(e2e) else None
        line = (
            f"- **{code}:** best {best[code]} ({rows['mean'].min():.4f}). Better than least squares by > 2σ "
            f"and Wilcoxon p < {alpha}: {_names(both)}; by > 2σ only: {_names(beats.drop(both.index))}; "
            f"worse by both: {_names(worse)}."
        )
        if best_e2e is not None:
            rank = int((rows["mean"] < best_e2e["mean"]).sum()) + 1
            line += f" End to end at its best ({best_e2e['configuration']}) ranks {rank} of {len(rows)}."
        out.append(line)
    return "\n".join(out) + "\n"


def _names(rows: pd.DataFrame) -> str:
    if rows.empty:
        return "none"
    return ", ".join(f"{r.configuration} ({r.gain:+.4f})" for r in rows.itertuples())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("metrics", help="a run's metrics.parquet")
    parser.add_argument("--alpha", type=float, default=0.05)
    args = parser.parse_args(argv)
    metrics = pd.read_parquet(args.metrics)
    print(markdown(compare(metrics, pd.read_csv(PAPER)), args.alpha), end="")


if __name__ == "__main__":
    main()
