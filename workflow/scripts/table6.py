"""Rule table6: the best lambda_KL per dataset and k (Table 6)."""

from targetcodec.io import read_parquet
from targetcodec.joblog import job_log
from targetcodec.report.tables import write_lambda_table

with job_log(snakemake.log[0]) as log:  # noqa: F821
    sweeps = read_parquet(snakemake.input[0])  # noqa: F821
    stem = snakemake.output[0].rsplit(".", 1)[0]  # noqa: F821
    best = write_lambda_table(sweeps, stem, snakemake.params.codes, snakemake.params.datasets)  # noqa: F821
    log(f"wrote {stem}.md/.csv/.tex ({len(best)} cells)")
