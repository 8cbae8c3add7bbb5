"""Rule paper_comparison: the paper's Tables 3-6 beside this run's (targetcodec/report/paper.py)."""

from pathlib import Path

from targetcodec.io import read_csv, read_parquet
from targetcodec.joblog import job_log
from targetcodec.report.linear_regression import read_linear_regression
from targetcodec.report.outputs import ReportSettings
from targetcodec.report.paper import write_paper_comparison

with job_log(snakemake.log[0]) as log:
    s = ReportSettings(**dict(snakemake.params.items()))  # imports the method modules too
    table6 = snakemake.input.lambda_kl
    selected = read_csv(table6[0], ("dataset", "k", "lambda_kl")) if table6 else None
    rows = write_paper_comparison(
        str(Path(snakemake.output.md).with_suffix("")),
        read_parquet(snakemake.input.metrics),
        s.codes,
        s.datasets,
        s.configurations,
        s.labels,
        s.reference,
        s.alpha,
        linear=read_linear_regression(snakemake.input.linear_regression),
        selected_lambda_kl=selected,
        paper_path=snakemake.input.paper,
    )
    log(f"{len(rows)} rows on {rows['dataset'].nunique()} datasets, {int(rows['differs_by_2sigma'].sum())} differ")
