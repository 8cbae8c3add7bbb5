"""Rule tables: Tables 3-5 (MAE, rMSE, R^2), mean +- 2 sigma over seeds."""

from pathlib import Path

import pandas as pd

from targetcodec.benchmark.jobs import job_log
from targetcodec.benchmark.tables import write_table

with job_log(snakemake.log[0]) as log:  # noqa: F821
    frame = pd.read_parquet(snakemake.input[0])  # noqa: F821
    for stem, metric in (("table3_mae", "mae"), ("table4_rmse", "rmse"), ("table5_r2", "r2")):
        out = Path(snakemake.output[0]).parent / stem  # noqa: F821
        write_table(frame, metric, str(out), snakemake.params.codes, snakemake.params.datasets)  # noqa: F821
        log(f"wrote {out}.md/.csv/.tex")
