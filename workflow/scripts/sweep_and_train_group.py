"""Rules sweep_and_train_k5, ... (sweeps.lr.job_per: k): the learning-rate sweep and reported seeds
of every configuration with one k, one configuration after the other, in one job; first the codec
(eq. 7) of the trained encoder, where the job makes it."""

from targetcodec.train.jobs import CodecPretraining, ConfigurationFiles, rule_job, sweep_and_train_group
from targetcodec.train.selection import sweep_seeds
from targetcodec.train.settings import TrainingJob

out, p = snakemake.output, snakemake.params
with rule_job(snakemake) as context:
    sweep_and_train_group(
        context,
        [TrainingJob.from_params(job, p.runtime) for job in p.jobs],
        grid=p.grid,
        sweep_seeds=sweep_seeds(p.sweep_seeds),
        seeds=p.seeds,
        outputs=ConfigurationFiles.of_group(list(out.runs), list(out.sweeps), list(out.selected)),
        checkpoints=p.checkpoints,
        codec=CodecPretraining(p.k, p.codec, p.codec_seed, out.codec[0], out.codec_report[0]) if out.codec else None,
    )
