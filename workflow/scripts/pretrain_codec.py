"""Rule pretrain_codec: initialise the codec (section 3.3) and pre-train it on eq. (7)."""

from targetcodec.codec import initial_codec, pretrain_codec
from targetcodec.data import SplitData
from targetcodec.io import atomic_write_json
from targetcodec.joblog import job_log, set_threads

with job_log(snakemake.log[0]) as log:
    set_threads(snakemake.threads)
    c = snakemake.params.codec
    k = int(snakemake.wildcards.k)
    data = SplitData.load(snakemake.input.data)
    codec = initial_codec(
        data.y_train, k, lambda_sigma=c["init_lambda_sigma"], seed=snakemake.params.seed, grid=c["grid"]
    )
    trained, report = pretrain_codec(
        codec,
        data.y_train,
        alpha=c["alpha"],
        steps=c["pretrain"]["steps"],
        lr=c["pretrain"]["lr"],
        weight_decay=c["weight_decay"],
        weight_decay_mode=c["weight_decay_mode"],
        batch_size=c["pretrain"]["batch_size"],
        log=log,
    )
    log(
        f"auto-encoding error (eq. 6) {report['initial_autoencoding_error']:.3g} -> {report['final_autoencoding_error']:.3g}, "
        f"mean entropy {report['initial_entropy']:.3g} -> {report['final_entropy']:.3g}"
    )
    trained.save(snakemake.output.codec)
    atomic_write_json(snakemake.output.report, report | {"k": k, "dataset": snakemake.wildcards.dataset})
