# Helpers shared by every rule: config validation, the dataset and configuration lists, and paths.

import re
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from targetcodec.config import check_config, coerce_command_line_values, describe_validation_error
from targetcodec.methods import METHODS
from targetcodec.report.outputs import EXTENSIONS, IN_REPORT, OUTPUTS
from targetcodec.train.settings import (
    Configuration,
    Runtime,
    configurations,
    job_params,
    method_settings,
    job_groups,
    seed_list,
    pack_name,
    seed_packs,
)

config.update(coerce_command_line_values(dict(config)))

try:
    validate(config, schema="../schemas/config.schema.yaml")
except WorkflowError as e:
    if e.__context__ is None:
        raise
    raise WorkflowError(f"Invalid configuration: {describe_validation_error(e.__context__)}") from None
try:
    check_config(config)
except ValueError as e:
    raise WorkflowError(f"Invalid configuration: {e}") from None

RESULTS = config["results"]
SEEDS = seed_list(config)
PACKS = seed_packs(SEEDS, config["pack_size"])
SWEEPS = config["sweeps"]
# The rows of Tables 3-5, then the extra k of Figure 4 (centre) for the methods of the k sweep.
CONFIGURATIONS = configurations(config["methods"], config["k_values"])
K_SWEEP_CONFIGURATIONS = (
    [c for c in configurations(SWEEPS["k"]["methods"], SWEEPS["k"]["grid"]) if c not in CONFIGURATIONS]
    if SWEEPS["k"]["enabled"]
    else []
)
LAMBDA_SWEEPS = [p for p in ("lambda_kl", "lambda_auto") if SWEEPS[p]["enabled"] and "end_to_end" in config["methods"]]
# Resources of the training rules (train*, sweep*), the only ones that ask for a GPU, so profiles
# need no list of rule names; a new training rule takes them as its resources (**TRAINING_RESOURCES).
TRAINING_RESOURCES = dict(config["training_resources"])
# The order in which ready jobs start when they outnumber the cores (no result depends on it): what
# other jobs wait for first (data, codecs), then the training jobs, the ones that train the most
# configurations first (a job of one k: its number of configurations), so that the longest do not
# start last; the figures made from nothing (2, 8, 9) with the training jobs, not left for the end.
PRIORITY = {"data": 100, "codec": 50, "training": 1, "report": 0}


wildcard_constraints:
    dataset="[A-Za-z0-9_]+",
    configuration="[a-z_]+(-k[0-9]+)?",
    seed="[0-9]+",
    k="[0-9]+",


def datasets():
    """The datasets of the benchmark's stages this run covers: run_datasets if given, else every enabled
    entry; an osv5m dataset has its own stage (workflow/rules/osv5m.smk)."""
    keys = config["run_datasets"] or [key for key, spec in config["datasets"].items() if spec.get("enabled", True)]
    return [key for key in keys if config["datasets"][key].get("source") != "osv5m"]


def dataset_code(dataset):
    return config["datasets"][dataset].get("code", dataset)


def run_files(dataset, labels=None):
    labels = labels or [c.label for c in CONFIGURATIONS + K_SWEEP_CONFIGURATIONS]
    return expand(f"{RESULTS}/runs/{dataset}/{{configuration}}/seed{{seed}}.json", configuration=labels, seed=SEEDS)


def all_run_files():
    return [path for dataset in datasets() for path in run_files(dataset)]


def all_final_selected_files():
    """The sweep choices every reported run was trained with (aggregation checks them): a run that
    predates its sweep is rerun even where the sweep shares its job."""
    return [
        selected_file(param, dataset, c.label)
        for dataset in datasets()
        for c in CONFIGURATIONS + K_SWEEP_CONFIGURATIONS
        for param in final_sweeps(c.label)
    ]


def selected_file(param, dataset, label):
    return f"{RESULTS}/selected/{param}/{dataset}/{label}.json"


def final_sweeps(label):
    """The sweeps whose choices a configuration's reported runs take: the learning rate, and the
    lambdas set to "selected"."""
    params = ["lr"] if SWEEPS["lr"]["enabled"] else []
    if Configuration.parse(label).method == "end_to_end":
        params += [p for p in ("lambda_kl", "lambda_auto") if config["end_to_end"][p] == "selected"]
    return params


def final_selected_inputs(wildcards):
    return [selected_file(p, wildcards.dataset, wildcards.configuration) for p in final_sweeps(wildcards.configuration)]


# Methods whose learning-rate sweep and reported runs share a job (sweep_and_train in train.smk): those whose
# runs read no other sweep, when all seeds form one pack (sweeps.lr.one_job in config.yaml).
ONE_JOB_METHODS = (
    sorted({c.method for c in CONFIGURATIONS + K_SWEEP_CONFIGURATIONS if final_sweeps(c.label) == ["lr"]})
    if SWEEPS["lr"]["enabled"] and SWEEPS["lr"]["one_job"] and len(PACKS) == 1
    else []
)


# The jobs that train them (sweeps.lr.job_per): one per configuration (rule sweep_and_train), or one
# per k, all the configurations with that k one after the other (rules sweep_and_train_k5, ...).
ONE_JOB_CONFIGURATIONS = [c for c in CONFIGURATIONS + K_SWEEP_CONFIGURATIONS if c.method in ONE_JOB_METHODS]
JOB_GROUPS = job_groups(ONE_JOB_CONFIGURATIONS) if SWEEPS["lr"]["job_per"] == "k" else {}


def group_training_jobs(labels):
    """The params.jobs of a job group: what each of its configurations reads (training_job)."""
    return lambda wildcards: [job_params(config, wildcards.dataset, label) for label in labels]


def group_codec_outputs(labels, extension):
    """The pre-trained codec (eq. 7) a job group makes first, if one of its configurations needs it
    (its configurations share k): pre-trained in the job, not in a job of its own."""
    needed = [Configuration.parse(label) for label in labels if needs_pretrained_codec(label)]
    return [f"{RESULTS}/codecs/{{dataset}}/k{needed[0].k}.{extension}"] if needed else []


def lambda_sweep_labels():
    return [c.label for c in CONFIGURATIONS if c.method == "end_to_end"]


def swept_labels(param):
    """The configurations a parameter's sweep job trains: the learning rate for those whose reported
    runs are trained in a job of their own (not sweep_and_train), the lambdas for end to end."""
    if param != "lr":
        return lambda_sweep_labels() if param in LAMBDA_SWEEPS else []
    if not SWEEPS["lr"]["enabled"]:
        return []
    return [c.label for c in CONFIGURATIONS + K_SWEEP_CONFIGURATIONS if c not in ONE_JOB_CONFIGURATIONS]


def all_sweep_files():
    """Every sweep table: learning rate for every trained configuration, lambdas for end to end."""
    files = []
    for dataset in datasets():
        if SWEEPS["lr"]["enabled"]:
            files += [
                f"{RESULTS}/sweeps/lr/{dataset}/{c.label}.parquet" for c in CONFIGURATIONS + K_SWEEP_CONFIGURATIONS
            ]
        for param in LAMBDA_SWEEPS:
            files += [f"{RESULTS}/sweeps/{param}/{dataset}/{label}.parquet" for label in lambda_sweep_labels()]
    return files


def training_job(wildcards):
    """What a training or sweep job reads (targetcodec.train.settings.job_params): the settings its
    numbers depend on and no others, so that a change reruns the jobs it affects and only those."""
    return job_params(config, wildcards.dataset, wildcards.configuration)


# Device and logging: passed as an object, which Snakemake leaves out of its rerun trigger.
RUNTIME = Runtime.from_config(config, workflow.basedir)


def needs_pretrained_codec(label):
    """Whether a configuration's method starts from the pre-trained codec (eq. 7)."""
    method = METHODS[Configuration.parse(label).method]
    return method.uses_k and method.needs_pretrained_codec(method_settings(config))


def codec_input(wildcards):
    """The pre-trained codec (eq. 7) a training job needs, if its method uses one."""
    if needs_pretrained_codec(wildcards.configuration):
        return f"{RESULTS}/codecs/{wildcards.dataset}/k{Configuration.parse(wildcards.configuration).k}.npz"
    return []


def sweep_shown(sweep):
    """Whether the sweep an output shows runs: Table 6 and Figure 4 (centre, bottom)."""
    if sweep == "lambda_kl":
        return "lambda_kl" in LAMBDA_SWEEPS
    if sweep == "k":
        return bool(K_SWEEP_CONFIGURATIONS or (SWEEPS["k"]["enabled"] and SWEEPS["k"]["methods"]))
    return True


# The tables and figures of this run (targetcodec/report/outputs.py), each built by its own rule.
REPORT_OUTPUTS = [o for o in OUTPUTS.values() if sweep_shown(o.shows)]


def all_outputs():
    if not datasets():  # only the OSV5M stage (workflow/rules/osv5m.smk) runs
        return []
    files = [f"{RESULTS}/metrics.parquet"] + [path for o in REPORT_OUTPUTS for path in o.files(RESULTS)]
    if all_sweep_files():
        files.append(f"{RESULTS}/sweeps.parquet")
    return files


def report_settings(output_entry):
    """The params of a table or figure rule (targetcodec.report.outputs.ReportSettings). The encoder
    figures (made from no results) take only their own: adding a dataset does not redraw them."""
    if output_entry.source is None:
        return {
            "lambda_sigma": config["codec"]["soft_binning_lambda_sigma"],
            "seed": config["split"]["seed"],
            "method_modules": config["method_modules"],
        }
    settings = method_settings(config)
    return {
        "datasets": datasets(),
        "codes": {d: dataset_code(d) for d in datasets()},
        "configurations": [c.label for c in CONFIGURATIONS],
        "labels": {c.label: c.display(settings) for c in CONFIGURATIONS},
        "k": config["figures"]["k"],
        "alpha": config["significance"]["alpha"],
        "reference": config["significance"]["reference"],
        "k_sweep_methods": SWEEPS["k"]["methods"],
        "lambda_kl_dataset": SWEEPS["lambda_kl"]["figure_dataset"],
        "lambda_sigma": config["codec"]["soft_binning_lambda_sigma"],
        "seed": config["split"]["seed"],
        "method_modules": config["method_modules"],
    }


def report_source(output_entry):
    """What a table or figure is made from: metrics.parquet, sweeps.parquet or nothing."""
    return {"metrics": f"{RESULTS}/metrics.parquet", "sweeps": f"{RESULTS}/sweeps.parquet", None: []}[
        output_entry.source
    ]


# The data stage (data.smk): the raw-data cache and the files each dataset is prepared from.

import json
import shlex
import sys
import time

from snakemake.settings.types import DeploymentMethod

from targetcodec.data.download import download_config
from targetcodec.data.sources import DataSourceError, get_source, raw_files as _raw_files

DATA_CACHE = str(Path(config["data_cache"]))  # without a trailing slash


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


def download_python(wildcards, output):
    """The download jobs' Python: the conda environment's with --sdm conda (importing targetcodec
    from the repository, as Snakemake's script rules do), else Snakemake's own. A function of
    output, like `request`, so that a new path to Python fetches nothing again."""
    if DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method:
        return f"PYTHONPATH={shlex.quote(workflow.basedir)} python"
    return shlex.quote(sys.executable)


def download_request(keys, output=None):
    return json.dumps({"config": download_config(config, keys), "datasets": keys, "output": output})


# The OSV5M stage (osv5m.smk): active only when a dataset with source osv5m is in the run.

import json
import shlex
import sys

from targetcodec.data.sources.osv5m import CACHE_FILES
from targetcodec.osv5m.settings import stage_plan

try:
    OSV_PLAN = stage_plan(config)  # None when no osv5m dataset is in the run
except ValueError as e:
    raise WorkflowError(f"Invalid configuration: {e}") from None
OSV_KEYS = [OSV_PLAN.dataset] if OSV_PLAN else []
OSV_SEEDS = OSV_PLAN.seeds if OSV_PLAN else []
OSV_LABELS = OSV_PLAN.labels if OSV_PLAN else []
OSV_PACKS = OSV_PLAN.packs if OSV_PLAN else []
OSV_CACHE = f"{RESULTS}/prepared/osv5m"


def osv5m_root():
    if not OSV_PLAN.root:
        key = OSV_PLAN.dataset
        raise WorkflowError(
            f"Invalid configuration: dataset {key!r} needs its data folder: config key 'osv5m_dir' "
            f"(--config osv5m_dir=/path) or 'datasets.{key}.path'"
        )
    return OSV_PLAN.root


OSV_IMAGES = OSV_PLAN.images if OSV_PLAN else None
OSV_EMBEDDINGS = f"{RESULTS}/osv5m/embeddings" if OSV_IMAGES else (OSV_PLAN.embeddings if OSV_PLAN else None)


def osv5m_inputs():
    from targetcodec.data.sources.osv5m import input_files
    from targetcodec.data.sources import DataSourceError

    try:
        files = [str(p) for p in input_files(osv5m_root())]
    except DataSourceError as e:
        raise WorkflowError(str(e)) from None
    if OSV_IMAGES:  # embeddings computed by osv5m_embed from the images
        files += [f"{OSV_EMBEDDINGS}/{split}.done" for split in ("train", "test")]
    return files


def osv5m_outputs():
    if not OSV_KEYS:
        return []
    return (
        expand(f"{RESULTS}/tables/{{t}}.{{ext}}", t=["table2_osv5m", "osv5m_geolocation"], ext=EXTENSIONS["table"])
        + expand(
            f"{RESULTS}/figures/{{f}}.{{ext}}", f=["osv5m_error_cdf", "osv5m_world_errors"], ext=EXTENSIONS["figure"]
        )
        + [f"{OSV_CACHE}/summary.json"]
    )
