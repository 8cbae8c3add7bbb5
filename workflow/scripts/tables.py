"""Rule tables: Tables 3-5 (MAE, rMSE, R^2), mean +- 2 sigma over seeds, with the paired test."""

from pathlib import Path

from targetcodec.io import read_parquet
from targetcodec.joblog import job_log
from targetcodec.report.tables import write_metric_tables

with job_log(snakemake.log[0]) as log:  # noqa: F821
    p = snakemake.params  # noqa: F821
    frame = read_parquet(snakemake.input[0])  # noqa: F821
    frame = frame[frame["configuration"].isin(p.configurations)]
    folder = Path(snakemake.output[0]).parent  # noqa: F821
    write_metric_tables(frame, folder, p.codes, p.datasets, p.alpha, p.reference)
    log(f"wrote Tables 3-5 to {folder}: {frame['configuration'].nunique()} configurations, {frame['dataset'].nunique()} datasets")
