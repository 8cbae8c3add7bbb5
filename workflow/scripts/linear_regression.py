"""Rule linear_regression: the linear-regression reference of every dataset, from its prepared split."""

from targetcodec.io import atomic_write_text
from targetcodec.joblog import job_log
from targetcodec.report.linear_regression import linear_regression_table

with job_log(snakemake.log[0]) as log:
    prepared = dict(zip(snakemake.params.datasets, snakemake.input))
    table = linear_regression_table(prepared, snakemake.params.codes)
    for row in table.itertuples():
        log(f"{row.dataset}: test MAE {row.test_mae:.4f}, rMSE {row.test_rmse:.4f}, R2 {row.test_r2:.4f}")
    atomic_write_text(snakemake.output[0], table.to_csv(index=False))
