"""Rule sweep_and_train: one configuration's learning-rate sweep, then its reported seeds at the
selected rate, in one job (one start of Python, torch and the data)."""

from targetcodec.joblog import job_log, set_threads
from targetcodec.locks import checkpoint_lock
from targetcodec.train.devices import claimed_gpus
from targetcodec.train.jobs import sweep_and_train
from targetcodec.train.selection import sweep_seeds
from targetcodec.train.settings import TrainingJob

# the checkpoint's lock first, held to the end: another live job on it stops this one before it reads it
with (
    job_log(snakemake.log[0]) as log,
    checkpoint_lock(snakemake.params.checkpoints, log),
    claimed_gpus(snakemake.resources.get("gpu", 0), log=log),
):
    set_threads(snakemake.threads)
    sweep_and_train(
        TrainingJob.from_params(snakemake.params.job, snakemake.params.runtime),
        grid=snakemake.params.grid,
        sweep_seeds=sweep_seeds(snakemake.params.sweep_seeds),
        seeds=snakemake.params.seeds,
        data_path=snakemake.input.data,
        codec_path=snakemake.input.codec or None,
        outputs=list(snakemake.output.runs),
        out_runs=snakemake.output.sweep,
        out_selected=snakemake.output.selected,
        checkpoints=snakemake.params.checkpoints,
        workflow_dir=snakemake.params.runtime.workflow_dir,
        log=log,
    )
