"""Rule sweep: train sweep seeds x grid values of one hyper-parameter as one pack and select the best."""

from targetcodec.train.devices import claimed_gpus
from targetcodec.joblog import job_log, set_threads
from targetcodec.train.selection import sweep_seeds
from targetcodec.train.jobs import sweep_configuration

with job_log(snakemake.log[0]) as log, claimed_gpus(snakemake.resources.get("gpu", 0), log=log):  # noqa: F821
    set_threads(snakemake.threads)  # noqa: F821
    sweep_configuration(
        config=snakemake.config,  # noqa: F821
        dataset=snakemake.wildcards.dataset,  # noqa: F821
        label=snakemake.wildcards.config,  # noqa: F821
        param=snakemake.wildcards.param,  # noqa: F821
        grid=snakemake.params.grid,  # noqa: F821
        seeds=sweep_seeds(snakemake.params.seeds),  # noqa: F821
        data_path=snakemake.input.data,  # noqa: F821
        codec_path=snakemake.input.codec or None,  # noqa: F821
        selected_paths=list(snakemake.input.selected),  # noqa: F821
        out_runs=snakemake.output.runs,  # noqa: F821
        out_selected=snakemake.output.selected,  # noqa: F821
        checkpoint=snakemake.params.checkpoint,  # noqa: F821
        log=log,
    )
