# Raw data -> train/val/test arrays (section 4, Table 1).
#
# Download and compute are apart: only the two download rules use the network, and both are
# local rules (on a cluster they run where the workflow runs, e.g. the login node). They fill the
# raw-data cache, config key data_cache; `snakemake download` stages every selected dataset for
# offline compute nodes. prepare depends on a dataset's cache file, so adding a dataset, or
# putting a new file into the cache, reruns that dataset's jobs only.

import json
import shlex
import sys
import time

from snakemake.settings.types import DeploymentMethod

from targetcodec.data.download import download_config
from targetcodec.data.sources import DataSourceError, get_source, raw_files as _raw_files

DATA_CACHE = str(Path(config["data_cache"]))  # without a trailing slash


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


# The download rules are shell rules running `python -m targetcodec.data.download`, so that
# `--sdm conda` applies to them (it does not to `run:` blocks). Not `script:` rules: Snakemake
# reruns a script rule whose output is older than its script, even a file it did not make, and
# deletes the output first; a `git pull` or a fresh clone would then download the whole cache again
# and delete files placed by hand (tests/test_data_workflow.py checks this). A shell rule reruns when its
# command text changes, which a change of the library does not do. What the job reads from the
# config travels in `request`, a params function of `output`: Snakemake does not compare such
# derived params between runs, so only `origin` (what the file is) fetches a file again.
DOWNLOAD_COMMAND = "{params.python} -m targetcodec.data.download {params.request:q} --log {log:q}"


def download_python(wildcards, output):
    """The download jobs' Python: the conda environment's with --sdm conda (importing targetcodec
    from the repository, as Snakemake's script rules do), else Snakemake's own. A function of
    output, like `request`, so that a new path to Python fetches nothing again."""
    if DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method:
        return f"PYTHONPATH={shlex.quote(workflow.basedir)} python"
    return shlex.quote(sys.executable)


def download_request(keys, output=None):
    return json.dumps(
        {"config": download_config(config, keys), "datasets": keys, "output": output}
    )


rule download_dataset:
    output:
        f"{DATA_CACHE}/{{dataset}}.{{ext}}",
    wildcard_constraints:
        ext="csv|parquet|npz",
    params:
        # what the file is, not how it is prepared: a new id or flag fetches it again
        origin=lambda wc: download_origin(config["datasets"][wc.dataset]),
        request=lambda wc, output: download_request([wc.dataset], output[0]),
        python=download_python,
    log:
        f"{RESULTS}/logs/download/{{dataset}}.{{ext}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/download/{{dataset}}.{{ext}}.tsv"
    conda:
        "../../envs/workflow.yaml"
    shell:
        DOWNLOAD_COMMAND


rule download:
    input:
        [path for key in network_datasets() for path in dataset_raw_files(key)],
    params:
        # changes on every invocation, so that `snakemake download` always checks the cache again
        # (fetching corrupted files again) although its benchmark file exists
        invocation=time.time_ns(),
        request=lambda wc, output: download_request(network_datasets()),
        python=download_python,
    log:
        f"{RESULTS}/logs/download.log",
    benchmark:
        f"{RESULTS}/benchmarks/download.tsv"
    conda:
        "../../envs/workflow.yaml"
    shell:
        DOWNLOAD_COMMAND


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
    conda:
        "../../envs/workflow.yaml"
    script:
        "../scripts/prepare.py"
