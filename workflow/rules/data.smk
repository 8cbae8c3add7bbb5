# Raw data -> train/val/test arrays (section 4, Table 1).
#
# Download and compute are apart: only the two download rules use the network, and both are
# local rules (on a cluster they run where the workflow runs, e.g. the login node). They fill the
# raw-data cache, config key data_cache; `snakemake download` stages every selected dataset for
# offline compute nodes. prepare depends on a dataset's cache file, so adding a dataset, or
# putting a new file into the cache, reruns that dataset's jobs only.

import time

from targetcodec.data.sources import DataSourceError, get_source, raw_files as _raw_files

DATA_CACHE = config["data_cache"].rstrip("/") or "/"


localrules:
    download,
    download_dataset,


def dataset_raw_files(key):
    """The files a dataset is prepared from: its cache file (network sources) or its local file."""
    try:
        return [str(path) for path in _raw_files(key, config["datasets"][key], DATA_CACHE)]
    except DataSourceError as e:
        raise WorkflowError(str(e)) from None


def needs_network(key):
    try:
        return get_source(key, config["datasets"][key]).needs_network
    except DataSourceError as e:
        raise WorkflowError(str(e)) from None


def download_origin(spec):
    return {k: spec[k] for k in ("source", "id", "flag", "size", "served_target_transform") if k in spec}


def network_datasets():
    return [key for key in datasets() if needs_network(key)]


# The download rules are `run:` blocks calling the library, not scripts: Snakemake reruns a script
# rule whose output is older than the script, which would download the whole cache again after a
# `git pull` (and try to overwrite files placed by hand).
rule download_dataset:
    output:
        f"{DATA_CACHE}/{{dataset}}.{{ext}}",
    wildcard_constraints:
        ext="csv|parquet|npz",
    params:
        # what the file is, not how it is prepared: a new id or flag fetches it again
        origin=lambda wc: download_origin(config["datasets"][wc.dataset]),
    log:
        f"{RESULTS}/logs/download/{{dataset}}.{{ext}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/download/{{dataset}}.{{ext}}.tsv"
    run:
        from targetcodec.data.download import download_one
        from targetcodec.joblog import job_log

        with job_log(log[0]) as log_line:
            download_one(config, wildcards.dataset, output[0], log_line)


rule download:
    input:
        [path for key in network_datasets() for path in dataset_raw_files(key)],
    params:
        datasets=network_datasets(),
        # changes on every invocation, so that `snakemake download` always checks the cache again
        # (fetching corrupted files again) although its benchmark file exists
        invocation=time.time_ns(),
    log:
        f"{RESULTS}/logs/download.log",
    benchmark:
        f"{RESULTS}/benchmarks/download.tsv"
    run:
        from targetcodec.data.download import ensure_all_cached
        from targetcodec.joblog import job_log

        with job_log(log[0]) as log_line:
            ensure_all_cached(config, params.datasets, log_line)


rule prepare:
    input:
        lambda wc: dataset_raw_files(wc.dataset),
    output:
        data=f"{RESULTS}/prepared/{{dataset}}.npz",
        summary=f"{RESULTS}/prepared/{{dataset}}.json",
    params:
        spec=lambda wc: config["datasets"][wc.dataset],
        split=config["split"],
        cache_dir=DATA_CACHE,
    log:
        f"{RESULTS}/logs/prepare/{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/prepare/{{dataset}}.tsv"
    script:
        "../scripts/prepare.py"
