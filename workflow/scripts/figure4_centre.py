"""Rule figure4_centre: test MAE against k (Figure 4, centre)."""

import pandas as pd

from targetcodec.report.figures import figure_k
from targetcodec.joblog import job_log

with job_log(snakemake.log[0]) as log:  # noqa: F821
    frame = pd.read_parquet(snakemake.input[0])  # noqa: F821
    stem = snakemake.output[0].rsplit(".", 1)[0]  # noqa: F821
    figure_k(frame, snakemake.params.methods, stem)  # noqa: F821
    log(f"wrote {stem}.png/.pdf")
