"""Rules sweep_lr, sweep_lambda_kl, sweep_lambda_auto: train sweep seeds x grid values of one
hyper-parameter as one pack and select the best."""

from targetcodec.train.jobs import rule_job, sweep_configuration
from targetcodec.train.selection import sweep_seeds
from targetcodec.train.settings import TrainingJob

with rule_job(snakemake) as context:
    sweep_configuration(
        context,
        TrainingJob.from_params(snakemake.params.job, snakemake.params.runtime),
        param=snakemake.params.param,
        grid=snakemake.params.grid,
        seeds=sweep_seeds(snakemake.params.seeds),
        out_runs=snakemake.output.runs,
        out_selected=snakemake.output.selected,
        selected=list(snakemake.input.selected),
        checkpoint=snakemake.params.checkpoint,
    )
