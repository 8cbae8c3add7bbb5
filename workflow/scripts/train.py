"""Rule train: train one pack of seeds of one (dataset, configuration) and write one file per seed."""

from targetcodec.joblog import job_log, set_threads
from targetcodec.locks import checkpoint_lock
from targetcodec.train.devices import claimed_gpus
from targetcodec.train.jobs import train_configuration
from targetcodec.train.settings import TrainingJob

# the checkpoint's lock first, held to the end: another live job on it stops this one before it reads it
with (
    job_log(snakemake.log[0]) as log,
    checkpoint_lock(snakemake.params.checkpoint, log),
    claimed_gpus(snakemake.resources.get("gpu", 0), log=log),
):
    set_threads(snakemake.threads)
    train_configuration(
        TrainingJob.from_params(snakemake.params.job, snakemake.params.runtime),
        seeds=snakemake.params.seeds,
        data_path=snakemake.input.data,
        codec_path=snakemake.input.codec or None,
        outputs=list(snakemake.output),
        selected_paths=list(snakemake.input.selected),
        checkpoint=snakemake.params.checkpoint,
        workflow_dir=snakemake.params.runtime.workflow_dir,
        log=log,
    )
