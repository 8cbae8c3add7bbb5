# Training: one job per pack of seeds, trained as one batched model; one result file per seed.
# A rule per pack (train, or train_seeds0-4, train_seeds5-9, ... with pack_size) keeps the per-seed
# file names independent of how seeds are packed.


for pack in PACKS:
    pack_name = f"seeds{pack[0]}-{pack[-1]}" if len(pack) > 1 else f"seed{pack[0]}"

    rule:
        name:
            "train" if len(PACKS) == 1 else f"train_{pack_name}".replace("-", "_")
        input:
            data=f"{RESULTS}/prepared/{{dataset}}.npz",
            codec=codec_input,
            selected=final_selected_inputs,
        output:
            [f"{RESULTS}/runs/{{dataset}}/{{configuration}}/seed{seed}.json" for seed in pack],
        log:
            f"{RESULTS}/logs/train/{{dataset}}/{{configuration}}/{pack_name}.log",
        benchmark:
            f"{RESULTS}/benchmarks/train/{{dataset}}/{{configuration}}/{pack_name}.tsv"
        conda:
            "../../envs/train.yaml"
        threads: config["threads"]
        resources:
            **TRAINING_RESOURCES,
        params:
            seeds=pack,
            job=training_job,
            runtime=RUNTIME,
            checkpoint=f"{RESULTS}/checkpoints/{{dataset}}/{{configuration}}/{pack_name}.ckpt",
        script:
            "../scripts/train.py"
