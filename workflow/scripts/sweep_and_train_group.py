"""Rules sweep_and_train_k5, ... (sweeps.lr.job_per: k): the learning-rate sweep and reported seeds
of every configuration with one k, one configuration after the other, in one job; first the codec
(eq. 7) of the trained encoder, where the job makes it."""

from targetcodec.codec import pretrain_codec_files
from targetcodec.data import SplitData
from targetcodec.joblog import job_log, set_threads
from targetcodec.locks import checkpoint_lock
from targetcodec.train.devices import claimed_gpus
from targetcodec.train.jobs import sweep_and_train_group
from targetcodec.train.selection import sweep_seeds
from targetcodec.train.settings import TrainingJob

# the checkpoint's lock first, held to the end: another live job on it stops this one before it reads it
with (
    job_log(snakemake.log[0]) as log,
    checkpoint_lock(snakemake.params.checkpoints, log),
    claimed_gpus(snakemake.resources.get("gpu", 0), log=log),
):
    set_threads(snakemake.threads)
    data = SplitData.load(snakemake.input.data)
    codec = snakemake.output.codec[0] if snakemake.output.codec else None
    if codec:
        pretrain_codec_files(
            data.y_train,
            snakemake.params.k,
            snakemake.params.codec,
            snakemake.params.codec_seed,
            codec,
            snakemake.output.codec_report[0],
            snakemake.wildcards.dataset,
            log=log,
        )
    jobs = [TrainingJob.from_params(job, snakemake.params.runtime) for job in snakemake.params.jobs]
    n = len(snakemake.params.seeds)
    runs = list(snakemake.output.runs)
    sweep_and_train_group(
        jobs,
        grid=snakemake.params.grid,
        sweep_seeds=sweep_seeds(snakemake.params.sweep_seeds),
        seeds=snakemake.params.seeds,
        data_path=snakemake.input.data,
        codec_path=codec,
        outputs=[
            {"runs": runs[i * n : (i + 1) * n], "sweep": sweep, "selected": selected}
            for i, (sweep, selected) in enumerate(zip(snakemake.output.sweeps, snakemake.output.selected))
        ],
        checkpoints=snakemake.params.checkpoints,
        workflow_dir=snakemake.params.runtime.workflow_dir,
        log=log,
        data=data,
    )
