"""Rule figure4_bottom: test MAE against lambda_KL on one dataset (Figure 4, bottom)."""

from targetcodec.report.figures import figure_lambda_kl
from targetcodec.io import read_parquet
from targetcodec.joblog import job_log

with job_log(snakemake.log[0]) as log:  # noqa: F821
    sweeps = read_parquet(snakemake.input[0])  # noqa: F821
    p = snakemake.params  # noqa: F821
    swept = list(dict.fromkeys(sweeps.loc[sweeps["param"] == "lambda_kl", "dataset"]))
    dataset = p.dataset if p.dataset in swept else swept[0]
    if dataset != p.dataset:
        log(f"sweeps.lambda_kl.figure_dataset {p.dataset!r} is not in this run; showing {dataset!r} instead")
    stem = snakemake.output[0].rsplit(".", 1)[0]  # noqa: F821
    figure_lambda_kl(sweeps, dataset, p.codes.get(dataset, dataset), stem)
    log(f"wrote {stem}.png/.pdf for {dataset}")
