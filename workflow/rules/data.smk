# Raw data -> train/val/test arrays (section 4, Table 1).


rule prepare:
    output:
        data=f"{RESULTS}/prepared/{{dataset}}.npz",
        summary=f"{RESULTS}/prepared/{{dataset}}.json",
    params:
        spec=lambda wc: config["datasets"][wc.dataset],
        split=config["split"],
    log:
        f"{RESULTS}/logs/prepare/{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/prepare/{{dataset}}.tsv"
    script:
        "../scripts/prepare.py"
