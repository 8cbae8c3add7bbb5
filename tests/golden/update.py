"""Record the tiny preset's metrics as the reference the tests compare every change with.

    snakemake --cores 2 --configfile presets/tiny.yaml && python tests/golden/update.py results/tiny/metrics.parquet

Run it only when a change is meant to move the numbers (say why in the commit message).
"""

import sys
from pathlib import Path

import pandas as pd

KEYS = ["dataset", "configuration", "seed"]
METRICS = ["val_mae", "test_mae", "test_rmse", "test_r2", "epochs_trained", "best_epoch"]
GOLDEN = Path(__file__).with_name("tiny_metrics.csv")


def table(path) -> pd.DataFrame:
    frame = pd.read_parquet(path)
    return frame[KEYS + METRICS].sort_values(KEYS).reset_index(drop=True)


if __name__ == "__main__":
    table(sys.argv[1]).to_csv(GOLDEN, index=False, float_format="%.17g")
    print(f"wrote {GOLDEN}")
