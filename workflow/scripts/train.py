"""Rule train: train one pack of seeds of one (dataset, configuration) and write one file per seed."""

from targetcodec.train.devices import claimed_gpus
from targetcodec.joblog import job_log, set_threads
from targetcodec.train.jobs import train_configuration

with job_log(snakemake.log[0]) as log, claimed_gpus(snakemake.resources.get("gpu", 0), log=log):  # noqa: F821
    set_threads(snakemake.threads)  # noqa: F821
    train_configuration(
        config=snakemake.config,  # noqa: F821
        dataset=snakemake.wildcards.dataset,  # noqa: F821
        label=snakemake.wildcards.config,  # noqa: F821
        seeds=snakemake.params.seeds,  # noqa: F821
        data_path=snakemake.input.data,  # noqa: F821
        codec_path=snakemake.input.codec or None,  # noqa: F821
        outputs=list(snakemake.output),  # noqa: F821
        selected_paths=list(snakemake.input.selected),  # noqa: F821
        checkpoint=snakemake.params.checkpoint,  # noqa: F821
        workflow_dir=snakemake.params.workflow_dir,  # noqa: F821
        log=log,
    )
