"""Rule encoder_figures: Figures 2, 8 and 9 (encoders over a 2-D target space)."""

from pathlib import Path

from targetcodec.report.encoder_figures import write_encoder_figures
from targetcodec.joblog import job_log

with job_log(snakemake.log[0]) as log:  # noqa: F821
    folder = Path(snakemake.output[0]).parent  # noqa: F821
    paths = write_encoder_figures(folder, seed=snakemake.params.seed, lambda_sigma=snakemake.params.lambda_sigma)  # noqa: F821
    log(f"wrote {len(paths)} files to {folder}")
