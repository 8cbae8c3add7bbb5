"""Table 2 of the paper (OpenStreetView-5M: test MAE, rMSE and R^2 in the [0, 1] target scale, mean
+- 2 sigma over seeds, relative change against least squares), the geolocation metrics (km, GeoScore,
accuracy within 1-2,500 km), the error CDF and a world scatter of the test predictions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..osv5m.geo import ACCURACY_THRESHOLDS_KM, haversine_km

TABLE2_METRICS = [("mae", "MAE (\u2193)", -1), ("rmse", "rMSE (\u2193)", -1), ("r2", "R^2 (\u2191)", 1)]
GEO_METRICS = [("median_km", "median error (km)"), ("mean_km", "mean error (km)"), ("geoscore", "GeoScore")] + [
    (f"acc_{t}km", f"acc. {t:,} km") for t in ACCURACY_THRESHOLDS_KM
]


def load_runs(paths) -> pd.DataFrame:
    """A row per run record, as the tabular stage reads them (``report.aggregate.run_row``): a failed
    run (train/failures.py) has ``failed``, its ``failure`` and NaN metrics; a damaged record raises
    an error that names it and says what to do."""
    from .aggregate import run_row

    return pd.DataFrame([run_row(path) for path in paths])


def _kept(runs: pd.DataFrame, label: str) -> tuple[pd.DataFrame, int]:
    """The runs of ``label`` that did not fail, and how many runs it has."""
    sel = runs[runs["configuration"] == label]
    return sel[~sel["failed"].astype(bool)], len(sel)


def _held(kept: int, total: int) -> str:
    """ " (n/N)" after a cell that holds n of its N seeds (the others failed)."""
    return f" ({kept}/{total})" if kept < total else ""


def failure_note(runs: pd.DataFrame) -> str:
    """For a caption: which runs are left out and why ("" if none failed)."""
    failed = runs[runs["failed"].astype(bool)]
    if failed.empty:
        return ""
    lines = "; ".join(f"{r.configuration} seed {r.seed} ({r.failure})" for r in failed.itertuples())
    return (
        f" A cell marked (n/N) holds n of its N seeds: {len(failed)} run(s) failed and are left out (a run fails "
        f"without a finite validation MAE, or with one no better than predicting the training mean): {lines}."
    )


def _display(label: str) -> str:
    from ..methods import METHODS
    from ..train.settings import Configuration

    c = Configuration.parse(label)
    name = (
        "Least-squares"
        if c.method == "least_squares"
        else "End-to-end"
        if c.method == "end_to_end"
        else METHODS[c.method].label
    )
    return name if c.k is None or c.method == "end_to_end" else f"{name} k = {c.k}"


def table2(runs: pd.DataFrame, reference: str = "least_squares") -> pd.DataFrame:
    """One row per metric, one column per configuration ("mean +- 2 sigma" over the runs that did not
    fail), and the relative change of each other configuration's mean against the reference (Table 2's
    Delta column). A configuration whose every run failed reads "failed (0/N)" and has no Delta."""
    labels = list(dict.fromkeys(runs["configuration"]))
    ref = next((lab for lab in labels if lab == reference), None)
    rows = []
    for key, name, _ in TABLE2_METRICS:
        row = {"Metric": name}
        for lab in labels:
            kept, total = _kept(runs, lab)
            v = kept[f"test_{key}"].to_numpy(dtype=float)
            mean = v.mean() if len(v) else float("nan")
            sd = v.std(ddof=1) if len(v) > 1 else 0.0
            row[_display(lab)] = (
                f"{mean:.3f} \u00b1 {2 * sd:.3f}{_held(len(v), total)}" if len(v) else f"failed (0/{total})"
            )
            row[f"{lab}_mean"], row[f"{lab}_2sigma"] = mean, 2 * sd
        for lab in labels:
            if ref is not None and lab != ref:
                change = 100 * (row[f"{lab}_mean"] - row[f"{ref}_mean"]) / abs(row[f"{ref}_mean"])
                column = "\u0394" if len(labels) == 2 else f"\u0394 {_display(lab)}"
                row[column] = f"{change:+.2f}%" if np.isfinite(change) else "n/a"
        rows.append(row)
    return pd.DataFrame(rows)


def geolocation_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration, over the runs that did not fail (failed ones: "failed (0/N)")."""
    rows = []
    for lab in dict.fromkeys(runs["configuration"]):
        kept, total = _kept(runs, lab)
        row = {"Method": _display(lab), "seeds": f"{len(kept)}{_held(len(kept), total)}"}
        for key, name in GEO_METRICS:
            v = kept[f"test_{key}"].to_numpy(dtype=float)
            scale = 100 if key.startswith("acc") else 1
            fmt = "{:.1f}" if key.startswith("acc") else "{:,.0f}"
            sd = v.std(ddof=1) if len(v) > 1 else 0.0
            row[name + (" (%)" if key.startswith("acc") else "")] = (
                f"{fmt.format(scale * v.mean())} \u00b1 {fmt.format(2 * scale * sd)}" if len(v) else "failed"
            )
        rows.append(row)
    return pd.DataFrame(rows)


def write_table(frame: pd.DataFrame, md: str, csv: str, tex: str, caption: str) -> None:
    from ..io import atomic_write_text

    shown = frame[[c for c in frame.columns if not c.endswith(("_mean", "_2sigma"))]]
    atomic_write_text(md, f"{caption}\n\n" + shown.to_markdown(index=False) + "\n")
    atomic_write_text(csv, frame.to_csv(index=False))
    body = shown.to_latex(index=False).replace("R^2", "$R^2$").replace("%", "\\%")
    text = "\\begin{table}\n\\centering\n" + body + f"\\caption{{{caption.replace('R^2', '$R^2$')}}}\n\\end{{table}}\n"
    for char, latex in (
        ("\u00b1", "$\\pm$"),
        ("\u2193", "$\\downarrow$"),
        ("\u2191", "$\\uparrow$"),
        ("\u0394", "$\\Delta$"),
        ("\u03c3", "$\\sigma$"),
    ):
        text = text.replace(char, latex)
    atomic_write_text(tex, text)


def _read_predictions(path) -> tuple[np.ndarray, np.ndarray]:
    """(truth, prediction) of a predictions file, degrees; a damaged one raises an error naming it."""
    from ..io import load_npz

    d = load_npz(path, ["truth", "prediction"])
    return d["truth"].astype(np.float64), d["prediction"].astype(np.float64)


def _load_predictions(paths_by_label: dict[str, list[str]]):
    out = {}
    for label, paths in paths_by_label.items():
        if paths:
            out[label] = _read_predictions(paths[0])  # the first seed that did not fail
    return out


def error_cdf_figure(paths_by_label: dict[str, list[str]], png: str, pdf: str) -> None:
    """Fraction of test images within d km, per configuration (every seed's errors pooled)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, paths in paths_by_label.items():
        if not paths:
            continue
        d = np.sort(np.concatenate([haversine_km(*_read_predictions(p)) for p in paths]))
        ax.plot(np.maximum(d, 0.1), np.arange(1, len(d) + 1) / len(d), label=_display(label))
    for t in ACCURACY_THRESHOLDS_KM:
        ax.axvline(t, color="0.85", lw=0.8, zorder=0)
    ax.set_xscale("log")
    ax.set_xlabel("great-circle error (km)")
    ax.set_ylabel("fraction of test images")
    ax.set_title("OpenStreetView-5M: test error CDF")
    if any(kept for kept in paths_by_label.values()):
        ax.legend()
    fig.tight_layout()
    _save(fig, png, pdf)


def world_scatter_figure(paths_by_label: dict[str, list[str]], png: str, pdf: str, max_points: int = 20000) -> None:
    """Test predictions (first seed) on a longitude/latitude plane, coloured by their error in km."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    preds = _load_predictions(paths_by_label)
    fig, axes = plt.subplots(1, max(1, len(preds)), figsize=(5.5 * max(1, len(preds)), 3.4), squeeze=False)
    for ax, (label, (truth, pred)) in zip(axes[0], preds.items()):
        d = haversine_km(truth, pred)
        keep = np.random.default_rng(0).permutation(len(d))[:max_points]
        sc = ax.scatter(
            pred[keep, 1],
            pred[keep, 0],
            c=np.maximum(d[keep], 1),
            s=3,
            cmap="viridis_r",
            norm=LogNorm(vmin=1, vmax=max(2, 20000)),
        )
        ax.set_xlim(-180, 180)
        ax.set_ylim(-90, 90)
        ax.set_xlabel("longitude")
        ax.set_ylabel("latitude")
        ax.set_title(f"{_display(label)}: predictions")
        fig.colorbar(sc, ax=ax, label="error (km)")
    fig.tight_layout()
    _save(fig, png, pdf)


def _save(fig, png, pdf):
    import matplotlib.pyplot as plt

    from ..io import atomic_path

    for path in (png, pdf):
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=Path(path).suffix[1:], dpi=150)
    plt.close(fig)


TABLE2_CAPTION = (
    "Table 2: Open Street View 5M: test set statistics (targets scaled to [0, 1]; mean \u00b1 2\u03c3 over seeds; "
    "\u0394: relative change of the mean against least squares)."
)
GEO_CAPTION = "OpenStreetView-5M: geolocation metrics of the test set (mean \u00b1 2\u03c3 over seeds)."


def write_report(
    run_files: list[str], prediction_files: dict[str, list[str]], out: dict, reference: str = "least_squares"
) -> pd.DataFrame:
    """All OSV5M outputs: ``out`` maps table2_{md,csv,tex}, geo_{md,csv,tex}, cdf_{png,pdf}, world_{png,pdf} to
    paths. ``prediction_files``: per configuration, a file per seed, in the order of its run records.
    Failed runs (train/failures.py) are left out of every table and figure, and the tables' captions
    name them. Returns the runs."""
    runs = load_runs(run_files)
    note = failure_note(runs)
    write_table(table2(runs, reference), out["table2_md"], out["table2_csv"], out["table2_tex"], TABLE2_CAPTION + note)
    write_table(geolocation_table(runs), out["geo_md"], out["geo_csv"], out["geo_tex"], GEO_CAPTION + note)
    failed = {(r.configuration, int(r.seed)) for r in runs[runs["failed"].astype(bool)].itertuples()}
    kept = {}
    for label, paths in prediction_files.items():
        seeds = runs.loc[runs["configuration"] == label, "seed"].astype(int).tolist()
        kept[label] = [p for p, seed in zip(paths, seeds, strict=True) if (label, seed) not in failed]
    error_cdf_figure(kept, out["cdf_png"], out["cdf_pdf"])
    world_scatter_figure(kept, out["world_png"], out["world_pdf"])
    return runs
