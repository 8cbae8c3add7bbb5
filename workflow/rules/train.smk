# Training: one job per pack of seeds, trained as one batched model; one result file per seed.
# A rule per pack (train, or train_seeds0-4, train_seeds5-9, ... with pack_size) keeps the per-seed
# file names independent of how seeds are packed. Where a configuration's learning-rate sweep and its
# reported runs share a job, rule sweep_and_train writes both (it takes precedence over train and sweep);
# with sweeps.lr.job_per: k, a rule per k (sweep_and_train_k5, ..., sweep_and_train_no_k) does that for
# every configuration with that k, one after the other in one job, after pre-training the codec (eq. 7)
# that trained_codec needs (so pretrain_codec runs only for codecs no such job makes).


for pack in PACKS:

    rule:
        name:
            plan.train_rule(pack, PACKS)
        input:
            data=f"{RESULTS}/prepared/{{dataset}}.npz",
            codec=codec_input,
            selected=final_selected_inputs,
        output:
            [f"{RESULTS}/runs/{{dataset}}/{{configuration}}/seed{seed}.json" for seed in pack],
        log:
            f"{RESULTS}/logs/train/{{dataset}}/{{configuration}}/{pack_name(pack)}.log",
        benchmark:
            f"{RESULTS}/benchmarks/train/{{dataset}}/{{configuration}}/{pack_name(pack)}.tsv"
        priority: PRIORITY["training"]
        conda:
            "../../envs/train.yaml"
        threads: config["threads"]
        resources:
            **TRAINING_RESOURCES,
        params:
            seeds=pack,
            job=training_job,
            runtime=RUNTIME,
            checkpoint=f"{RESULTS}/checkpoints/{{dataset}}/{{configuration}}/{pack_name(pack)}.ckpt",
        script:
            "../scripts/train.py"


if ONE_JOB_METHODS and not JOB_GROUPS:

    rule sweep_and_train:
        input:
            data=f"{RESULTS}/prepared/{{dataset}}.npz",
            codec=codec_input,
        output:
            runs=[f"{RESULTS}/runs/{{dataset}}/{{configuration}}/seed{seed}.json" for seed in SEEDS],
            sweep=f"{RESULTS}/sweeps/lr/{{dataset}}/{{configuration}}.parquet",
            selected=f"{RESULTS}/selected/lr/{{dataset}}/{{configuration}}.json",
        log:
            f"{RESULTS}/logs/sweep_and_train/{{dataset}}/{{configuration}}.log",
        benchmark:
            f"{RESULTS}/benchmarks/sweep_and_train/{{dataset}}/{{configuration}}.tsv"
        wildcard_constraints:
            configuration=f"({'|'.join(ONE_JOB_METHODS)})(-k[0-9]+)?",
        priority: PRIORITY["training"]
        conda:
            "../../envs/train.yaml"
        threads: config["threads"]
        resources:
            **TRAINING_RESOURCES,
        params:
            grid=SWEEPS["lr"]["grid"],
            sweep_seeds=SWEEPS["lr"]["seeds"],
            seeds=SEEDS,
            job=training_job,
            runtime=RUNTIME,
            checkpoints=f"{RESULTS}/checkpoints/{{dataset}}/{{configuration}}",
        script:
            "../scripts/sweep_and_train.py"

    ruleorder: sweep_and_train > train


for group, labels in JOB_GROUPS.items():

    rule:
        name:
            f"sweep_and_train_{group}"
        input:
            data=f"{RESULTS}/prepared/{{dataset}}.npz",
        output:
            runs=[f"{RESULTS}/runs/{{dataset}}/{label}/seed{seed}.json" for label in labels for seed in SEEDS],
            sweeps=[f"{RESULTS}/sweeps/lr/{{dataset}}/{label}.parquet" for label in labels],
            selected=[f"{RESULTS}/selected/lr/{{dataset}}/{label}.json" for label in labels],
            codec=group_codec_outputs(labels, "npz"),
            codec_report=group_codec_outputs(labels, "json"),
        log:
            f"{RESULTS}/logs/sweep_and_train/{{dataset}}/{group}.log",
        benchmark:
            f"{RESULTS}/benchmarks/sweep_and_train/{{dataset}}/{group}.tsv"
        priority: PRIORITY["training"] * len(labels)
        conda:
            "../../envs/train.yaml"
        threads: config["threads"]
        resources:
            **TRAINING_RESOURCES,
        params:
            jobs=group_training_jobs(labels),
            grid=SWEEPS["lr"]["grid"],
            sweep_seeds=SWEEPS["lr"]["seeds"],
            seeds=SEEDS,
            runtime=RUNTIME,
            checkpoints=f"{RESULTS}/checkpoints/{{dataset}}/{group}",
            k=Configuration.parse(labels[0]).k,
            codec=config["codec"],
            codec_seed=config["split"]["seed"],  # k-means++ initialisation for m > 1 (section 3.3)
        script:
            "../scripts/sweep_and_train_group.py"

    for other in ("train", "pretrain_codec"):
        workflow.ruleorder(f"sweep_and_train_{group}", other)
