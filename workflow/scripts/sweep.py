"""Rules sweep_lr, sweep_lambda_kl, sweep_lambda_auto: train sweep seeds x grid values of one
hyper-parameter as one pack and select the best."""

from targetcodec.joblog import job_log, set_threads
from targetcodec.locks import checkpoint_lock
from targetcodec.train.devices import claimed_gpus
from targetcodec.train.jobs import sweep_configuration
from targetcodec.train.selection import sweep_seeds
from targetcodec.train.settings import TrainingJob

# the checkpoint's lock first, held to the end: another live job on it stops this one before it reads it
with (
    job_log(snakemake.log[0]) as log,
    checkpoint_lock(snakemake.params.checkpoint, log),
    claimed_gpus(snakemake.resources.get("gpu", 0), log=log),
):
    set_threads(snakemake.threads)
    sweep_configuration(
        TrainingJob.from_params(snakemake.params.job, snakemake.params.runtime),
        param=snakemake.params.param,
        grid=snakemake.params.grid,
        seeds=sweep_seeds(snakemake.params.seeds),
        data_path=snakemake.input.data,
        codec_path=snakemake.input.codec or None,
        selected_paths=list(snakemake.input.selected),
        out_runs=snakemake.output.runs,
        out_selected=snakemake.output.selected,
        checkpoint=snakemake.params.checkpoint,
        log=log,
    )
