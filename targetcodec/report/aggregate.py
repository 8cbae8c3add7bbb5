"""Every run file (runs/<dataset>/<configuration>/seed<s>.json) and sweep table into one tidy
parquet table, a row per run: what every table and figure is made from."""

from __future__ import annotations

import json

import pandas as pd

def load_runs(paths) -> pd.DataFrame:
    """A row per run: identifiers, hyper-parameters, metrics, epochs and wall time."""
    rows = []
    for path in paths:
        with open(path) as f:
            r = json.load(f)
        row = {key: r[key] for key in ("dataset", "code", "method", "k", "configuration", "seed", "epochs_trained", "best_epoch", "diverged")}
        row.update(r["hyperparameters"])
        row.update(r["metrics"])
        row["wall_seconds"] = r["provenance"]["wall_seconds"]
        row["pack_size"] = r["provenance"]["pack_size"]
        row["device"] = r["provenance"]["hardware"]["device"]
        rows.append(row)
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame["k"] = frame["k"].astype("Int64")
    return frame
