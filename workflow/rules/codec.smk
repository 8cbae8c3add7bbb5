# Stage 1 of section 3.3: pre-train the softmax encoder-decoder on the training targets (eq. 7).


rule pretrain_codec:
    input:
        data=f"{RESULTS}/prepared/{{dataset}}.npz",
    output:
        codec=f"{RESULTS}/codecs/{{dataset}}/k{{k}}.npz",
        report=f"{RESULTS}/codecs/{{dataset}}/k{{k}}.json",
    log:
        f"{RESULTS}/logs/pretrain_codec/{{dataset}}/k{{k}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/pretrain_codec/{{dataset}}/k{{k}}.tsv"
    priority: PRIORITY["codec"]
    conda:
        "../../envs/train.yaml"
    threads: config["threads"]
    params:
        codec=config["codec"],
        seed=config["split"]["seed"],  # k-means++ initialisation for m > 1 (section 3.3)
    script:
        "../scripts/pretrain_codec.py"
