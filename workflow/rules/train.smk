# Training: one job per pack of seeds, trained as one batched model; one result file per seed.
# A rule per pack (train, or train_seeds0-4, train_seeds5-9, ... with pack_size) keeps the per-seed
# file names independent of how seeds are packed.


def training_settings(wildcards):
    """Everything a run's numbers depend on, so that changing it reruns the run."""
    from targetcodec.benchmark.settings import model_kind

    kind = model_kind(config, wildcards.dataset)
    return {
        "architecture": config["architecture"][kind],
        "training": {key: value for key, value in config["training"].items() if key not in ("mlp", "cnn", "log_every")}
        | config["training"][kind],
        "codec": config["codec"],
        "end_to_end": config["end_to_end"],
        "huber_delta": config["huber_delta"],
    }


for pack in PACKS:
    pack_name = f"seeds{pack[0]}-{pack[-1]}" if len(pack) > 1 else f"seed{pack[0]}"

    rule:
        name:
            "train" if len(PACKS) == 1 else f"train_{pack_name}".replace("-", "_")
        input:
            data=f"{RESULTS}/prepared/{{dataset}}.npz",
            codec=codec_input,
        output:
            [f"{RESULTS}/runs/{{dataset}}/{{config}}/seed{seed}.json" for seed in pack],
        params:
            seeds=pack,
            settings=training_settings,
            checkpoint=f"{RESULTS}/checkpoints/{{dataset}}/{{config}}/{pack_name}.ckpt",
            workflow_dir=workflow.basedir,
        log:
            f"{RESULTS}/logs/train/{{dataset}}/{{config}}/{pack_name}.log",
        benchmark:
            f"{RESULTS}/benchmarks/train/{{dataset}}/{{config}}/{pack_name}.tsv"
        threads: config["threads"]
        resources:
            **TRAINING_RESOURCES,
        script:
            "../scripts/train.py"
