# Hyper-parameter sweeps (section 4): per (dataset, configuration), sweep seeds x grid values of one
# hyper-parameter train as one pack; the value with the lowest mean validation MAE is written to
# selected/<param>/..., which the reported runs (and later sweeps) read.


rule sweep:
    input:
        data=f"{RESULTS}/prepared/{{dataset}}.npz",
        codec=codec_input,
        selected=sweep_selected_inputs,
    output:
        runs=f"{RESULTS}/sweeps/{{param}}/{{dataset}}/{{configuration}}.parquet",
        selected=f"{RESULTS}/selected/{{param}}/{{dataset}}/{{configuration}}.json",
    log:
        f"{RESULTS}/logs/sweep/{{param}}/{{dataset}}/{{configuration}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/sweep/{{param}}/{{dataset}}/{{configuration}}.tsv"
    priority: PRIORITY["training"]
    conda:
        "../../envs/train.yaml"
    threads: config["threads"]
    resources:
        **TRAINING_RESOURCES,
    params:
        grid=lambda wc: SWEEPS[wc.param]["grid"],
        seeds=lambda wc: SWEEPS[wc.param]["seeds"],
        job=training_job,
        runtime=RUNTIME,
        checkpoint=f"{RESULTS}/checkpoints/sweeps/{{param}}/{{dataset}}/{{configuration}}.ckpt",
    script:
        "../scripts/sweep.py"
