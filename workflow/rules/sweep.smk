# Hyper-parameter sweeps (section 4): per (dataset, configuration), sweep seeds x grid values of one
# hyper-parameter train as one pack; the value with the lowest mean validation MAE is written to
# selected/<param>/..., which the reported runs (and later sweeps) read.
#
# A rule per swept parameter (sweep_lr, sweep_lambda_kl, sweep_lambda_auto), each limited to the
# configurations it sweeps, so that no rule can make a file another rule makes: on SLURM every job
# runs as a Snakemake of its own allowed only its rule, and a rule that could also make its input
# (a learning rate a sweep_and_train job selected) would train that again, racing with the jobs
# that read it (tests/test_workflow.py::test_remote_jobs_plan_only_themselves).


for param in ("lr", "lambda_kl", "lambda_auto"):
    if not swept_labels(param):
        continue
    # a lambda sweep runs at the selected learning rate
    at_selected_lr = param != "lr" and SWEEPS["lr"]["enabled"]

    rule:
        name:
            f"sweep_{param}"
        input:
            data=f"{RESULTS}/prepared/{{dataset}}.npz",
            codec=codec_input,
            selected=[selected_file("lr", "{dataset}", "{configuration}")] if at_selected_lr else [],
        output:
            runs=f"{RESULTS}/sweeps/{param}/{{dataset}}/{{configuration}}.parquet",
            selected=f"{RESULTS}/selected/{param}/{{dataset}}/{{configuration}}.json",
        log:
            f"{RESULTS}/logs/sweep/{param}/{{dataset}}/{{configuration}}.log",
        benchmark:
            f"{RESULTS}/benchmarks/sweep/{param}/{{dataset}}/{{configuration}}.tsv"
        wildcard_constraints:
            configuration="|".join(re.escape(label) for label in swept_labels(param)),
        priority: PRIORITY["training"]
        conda:
            "../../envs/train.yaml"
        threads: config["threads"]
        resources:
            **TRAINING_RESOURCES,
        params:
            param=param,
            grid=SWEEPS[param]["grid"],
            seeds=SWEEPS[param]["seeds"],
            job=training_job,
            runtime=RUNTIME,
            checkpoint=f"{RESULTS}/checkpoints/sweeps/{param}/{{dataset}}/{{configuration}}.ckpt",
        script:
            "../scripts/sweep.py"
