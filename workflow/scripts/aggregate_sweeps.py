"""Rule aggregate_sweeps: every sweep table -> one parquet (a row per sweep run)."""

import pandas as pd

from targetcodec.joblog import job_log
from targetcodec.io import write_parquet

with job_log(snakemake.log[0]) as log:
    frame = pd.concat([pd.read_parquet(path) for path in snakemake.input], ignore_index=True)
    write_parquet(frame, snakemake.output[0])
    log(f"{len(frame)} sweep runs: " + ", ".join(f"{p} {n}" for p, n in frame.groupby("param").size().items()))
