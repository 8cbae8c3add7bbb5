"""Rule train: train one pack of seeds of one (dataset, configuration) and write one file per seed."""

from targetcodec.train.jobs import rule_job, train_configuration
from targetcodec.train.settings import TrainingJob

with rule_job(snakemake) as context:
    train_configuration(
        context,
        TrainingJob.from_params(snakemake.params.job, snakemake.params.runtime),
        seeds=snakemake.params.seeds,
        outputs=list(snakemake.output),
        selected=list(snakemake.input.selected),
        checkpoint=snakemake.params.checkpoint,
    )
