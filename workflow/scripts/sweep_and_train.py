"""Rule sweep_and_train: one configuration's learning-rate sweep, then its reported seeds at the
selected rate, in one job (one start of Python, torch and the data)."""

from targetcodec.train.jobs import ConfigurationFiles, rule_job, sweep_and_train
from targetcodec.train.selection import sweep_seeds
from targetcodec.train.settings import TrainingJob

with rule_job(snakemake) as context:
    sweep_and_train(
        context,
        TrainingJob.from_params(snakemake.params.job, snakemake.params.runtime),
        grid=snakemake.params.grid,
        sweep_seeds=sweep_seeds(snakemake.params.sweep_seeds),
        seeds=snakemake.params.seeds,
        outputs=ConfigurationFiles(list(snakemake.output.runs), snakemake.output.sweep, snakemake.output.selected),
        checkpoints=snakemake.params.checkpoints,
    )
