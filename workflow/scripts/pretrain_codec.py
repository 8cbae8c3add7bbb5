"""Rule pretrain_codec: initialise the codec (section 3.3) and pre-train it on eq. (7)."""

from targetcodec.codec import pretrain_codec_files
from targetcodec.data import SplitData
from targetcodec.joblog import job_log, set_threads

with job_log(snakemake.log[0]) as log:
    set_threads(snakemake.threads)
    pretrain_codec_files(
        SplitData.load(snakemake.input.data).y_train,
        int(snakemake.wildcards.k),
        snakemake.params.codec,
        snakemake.params.seed,
        snakemake.output.codec,
        snakemake.output.report,
        snakemake.wildcards.dataset,
        log=log,
    )
