"""Rule figure4_centre: test MAE against k (Figure 4, centre)."""

from targetcodec.report.figures import figure_k
from targetcodec.io import read_parquet
from targetcodec.joblog import job_log

with job_log(snakemake.log[0]) as log:  # noqa: F821
    frame = read_parquet(snakemake.input[0])  # noqa: F821
    stem = snakemake.output[0].rsplit(".", 1)[0]  # noqa: F821
    figure_k(frame, snakemake.params.methods, stem)  # noqa: F821
    log(f"wrote {stem}.png/.pdf")
