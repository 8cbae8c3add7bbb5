"""Rule aggregate_sweeps: every sweep table -> one parquet (a row per sweep run)."""

from targetcodec.joblog import job_log
from targetcodec.io import write_parquet
from targetcodec.report.aggregate import load_sweeps

with job_log(snakemake.log[0]) as log:  # noqa: F821
    frame = load_sweeps(snakemake.input)  # noqa: F821
    write_parquet(frame, snakemake.output[0])  # noqa: F821
    log(f"{len(frame)} sweep runs: " + ", ".join(f"{p} {n}" for p, n in frame.groupby("param").size().items()))
