"""Rule aggregate_sweeps: every sweep table -> one parquet (a row per sweep run)."""

from targetcodec.io import write_parquet
from targetcodec.joblog import job_log
from targetcodec.report.aggregate import load_sweeps

with job_log(snakemake.log[0]) as log:
    frame = load_sweeps(snakemake.input)
    write_parquet(frame, snakemake.output[0])
    failed = int(frame["failed"].sum()) if "failed" in frame.columns else 0
    log(
        f"{len(frame)} sweep runs: "
        + ", ".join(f"{p} {n}" for p, n in frame.groupby("param").size().items())
        + f"; {failed} failed (named in their sweep's log, left out of every mean)"
    )
