# Raw data -> train/val/test arrays (section 4, Table 1).
#
# Download and compute are apart: only the two download rules use the network, and both are
# local rules (on a cluster they run where the workflow runs, e.g. the login node). They fill the
# raw-data cache, config key data_cache; `snakemake download` stages every selected dataset for
# offline compute nodes. prepare depends on a dataset's cache file, so adding a dataset, or
# putting a new file into the cache, reruns that dataset's jobs only.


localrules:
    download,
    download_dataset,


# The download rules are shell rules running `python -m targetcodec.data.download`, so that
# `--sdm conda` applies to them (it does not to `run:` blocks). Not `script:` rules: Snakemake
# reruns a script rule whose output is older than its script, even a file it did not make, and
# deletes the output first; a `git pull` or a fresh clone would then download the whole cache again
# and delete files placed by hand (tests/test_data_workflow.py checks this). A shell rule reruns when its
# command text changes, which a change of the library does not do. What the job reads from the
# config travels in `request`, a params function of `output`: Snakemake does not compare such
# derived params between runs, so only `origin` (what the file is) fetches a file again.
DOWNLOAD_COMMAND = "{params.python} -m targetcodec.data.download {params.request:q} --log {log:q}"


rule download_dataset:
    output:
        f"{DATA_CACHE}/{{dataset}}.{{ext}}",
    log:
        f"{RESULTS}/logs/download/{{dataset}}.{{ext}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/download/{{dataset}}.{{ext}}.tsv"
    wildcard_constraints:
        ext="csv|parquet|npz",
    priority: PRIORITY["data"]
    conda:
        "../../envs/workflow.yaml"
    params:
        # what the file is, not how it is prepared: a new id or flag fetches it again
        origin=lambda wc: download_origin(config["datasets"][wc.dataset]),
        request=lambda wc, output: download_request([wc.dataset], output[0]),
        python=download_python,
    shell:
        DOWNLOAD_COMMAND


rule download:
    input:
        [path for key in network_datasets() for path in dataset_raw_files(key)],
    log:
        f"{RESULTS}/logs/download.log",
    benchmark:
        f"{RESULTS}/benchmarks/download.tsv"
    conda:
        "../../envs/workflow.yaml"
    params:
        # changes on every invocation, so that `snakemake download` always checks the cache again
        # (fetching corrupted files again) although its benchmark file exists
        invocation=time.time_ns(),
        request=lambda wc, output: download_request(network_datasets()),
        python=download_python,
    shell:
        DOWNLOAD_COMMAND


rule prepare:
    input:
        lambda wc: dataset_raw_files(wc.dataset),
    output:
        data=f"{RESULTS}/prepared/{{dataset}}.npz",
        summary=f"{RESULTS}/prepared/{{dataset}}.json",
    log:
        f"{RESULTS}/logs/prepare/{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/prepare/{{dataset}}.tsv"
    priority: PRIORITY["data"]
    conda:
        "../../envs/workflow.yaml"
    params:
        spec=lambda wc: config["datasets"][wc.dataset],
        split=config["split"],
        # only the network sources read the cache (its files are the inputs): data_cache reruns nothing else
        cache_dir=lambda wc: DATA_CACHE if needs_network(wc.dataset) else "",
    script:
        "../scripts/prepare.py"
