# Hyper-parameter sweeps (section 4): per (dataset, configuration), sweep seeds x grid values of one
# hyper-parameter train as one pack; the value with the lowest mean validation MAE is written to
# selected/<param>/..., which the reported runs (and later sweeps) read.


rule sweep:
    input:
        data=f"{RESULTS}/prepared/{{dataset}}.npz",
        codec=codec_input,
        selected=sweep_selected_inputs,
    output:
        runs=f"{RESULTS}/sweeps/{{param}}/{{dataset}}/{{config}}.parquet",
        selected=f"{RESULTS}/selected/{{param}}/{{dataset}}/{{config}}.json",
    params:
        grid=lambda wc: SWEEPS[wc.param]["grid"],
        seeds=lambda wc: SWEEPS[wc.param]["seeds"],
        settings=training_settings,
        checkpoint=f"{RESULTS}/checkpoints/sweeps/{{param}}/{{dataset}}/{{config}}.ckpt",
    log:
        f"{RESULTS}/logs/sweep/{{param}}/{{dataset}}/{{config}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/sweep/{{param}}/{{dataset}}/{{config}}.tsv"
    threads: config["threads"]
    resources:
        **TRAINING_RESOURCES,
    conda:
        "../../envs/train.yaml"
    script:
        "../scripts/sweep.py"
