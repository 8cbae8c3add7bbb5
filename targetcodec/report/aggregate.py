"""Every run file (runs/<dataset>/<configuration>/seed<s>.json) and sweep table into one tidy
parquet table, a row per run: what every table and figure is made from."""

from __future__ import annotations

import pandas as pd

from ..io import damaged, read_json, read_parquet

IDENTIFIERS = ("dataset", "code", "method", "k", "configuration", "seed", "epochs_trained", "best_epoch", "diverged")


def run_row(path) -> dict:
    """One run file as a row. A failed run (train/failures.py) keeps ``failed`` and ``failure`` and
    has NaN metrics here, so that no table cell or figure averages it; a run that did not fail but
    has a NaN or infinite metric is an error, never a number for a table."""
    from ..train.failures import check_finished_run

    r = read_json(path)
    try:
        row = {key: r[key] for key in IDENTIFIERS}
        row.update(r["hyperparameters"])
        metrics = {name: float("nan") if value is None else float(value) for name, value in r["metrics"].items()}
        failed = bool(r.get("failed", r["diverged"]))  # run files from before failures.py: diverged only
        row["failed"] = failed
        row["failure"] = (r.get("failure") or "diverged: no finite validation MAE") if failed else ""
        row["wall_seconds"] = r["provenance"]["wall_seconds"]
        row["pack_size"] = r["provenance"]["pack_size"]
        row["device"] = r["provenance"]["hardware"]["device"]
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise damaged(path, e) from e
    check_finished_run(metrics, row["failure"] or None, f"run file {path}")
    row.update({name: float("nan") for name in metrics} if failed else metrics)
    return row


def load_runs(paths) -> pd.DataFrame:
    """A row per run: identifiers, hyper-parameters, metrics (NaN for failed runs), whether and why
    the run failed, epochs and wall time."""
    frame = pd.DataFrame([run_row(path) for path in paths])
    if not frame.empty:
        frame["k"] = frame["k"].astype("Int64")
    return frame


def check_selected(frame: pd.DataFrame, selected_paths) -> None:
    """Every reported run was trained at the values its sweeps selected (selected/<param>/...): a run
    file from before a sweep (or from another sweep grid) is an error naming both files."""
    for path in selected_paths or []:
        record = read_json(path)
        try:
            param, value = record["param"], float(record["value"])
            dataset, configuration = record["dataset"], record["configuration"]
        except (KeyError, TypeError, ValueError) as e:
            raise damaged(path, e) from e
        runs = frame[(frame["dataset"] == dataset) & (frame["configuration"] == configuration)]
        stale = runs[runs[param] != value] if param in runs.columns else runs
        if len(stale):
            seeds = ", ".join(str(s) for s in stale["seed"])
            raise ValueError(
                f"runs/{dataset}/{configuration} seeds {seeds} were not trained at the {param} = {value:g} that "
                f"{path} selected; delete those run files and run the workflow again"
            )


def failed_run_lines(frame: pd.DataFrame) -> list[str]:
    """One line per failed run, for job logs and table captions."""
    failed = frame[frame["failed"]] if "failed" in frame.columns else frame.iloc[:0]
    return [f"{r.dataset} / {r.configuration} / seed {r.seed}: {r.failure}" for r in failed.itertuples()]


def load_sweeps(paths) -> pd.DataFrame:
    """Every sweep table (rules sweep_lr, sweep_lambda_kl, sweep_lambda_auto, sweep_and_train...) as one
    frame, with NaN metrics for failed runs as in ``load_runs`` (the sweep's own table keeps what they
    measured); a damaged one names its file."""
    frame = pd.concat([read_parquet(path) for path in paths], ignore_index=True)
    if "failed" in frame.columns:
        metrics = [c for c in frame.columns if c.startswith(("val_", "test_"))]
        frame.loc[frame["failed"].astype(bool), metrics] = float("nan")
    return frame
