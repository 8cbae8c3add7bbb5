# Helpers shared by every rule: config validation, and the input functions and paths of the rules.
# What runs where (datasets, configurations, sweeps, job groups, seed packs) is planned by
# targetcodec/train/plan.py from the config; this file only turns that plan into file names.

import json
import re
import shlex
import sys
import time
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.settings.types import DeploymentMethod
from snakemake.utils import validate

from targetcodec.config import check_config, coerce_command_line_values, describe_validation_error
from targetcodec.data.download import download_config
from targetcodec.data.sources import DataSourceError, get_source, raw_files as _raw_files
from targetcodec.data.sources.osv5m import CACHE_FILES, input_files as osv5m_input_files
from targetcodec.osv5m.settings import stage_plan
from targetcodec.report.outputs import EXTENSIONS, IN_REPORT
from targetcodec.train import plan
from targetcodec.train.settings import (
    Configuration,
    Runtime,
    job_params,
    method_settings,
    pack_name,
    seed_list,
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
PACKS = plan.packs(config)
SWEEPS = config["sweeps"]
# The rows of Tables 3-5.
CONFIGURATIONS = plan.reported_configurations(config)
# Methods whose learning-rate sweep and reported runs share a job (rule sweep_and_train), and the
# jobs of several configurations (sweeps.lr.job_per: k) that train them: {group: labels}.
ONE_JOB_METHODS = plan.one_job_methods(config)
JOB_GROUPS = plan.sweep_and_train_groups(config)
# Resources of the training rules (train*, sweep*), the only ones that ask for a GPU, so profiles
# need no list of rule names; a new training rule takes them as its resources (**TRAINING_RESOURCES).
TRAINING_RESOURCES = dict(config["training_resources"])
# The order in which ready jobs start when they outnumber the cores (no result depends on it): what
# other jobs wait for first (data, codecs), then the training jobs, the ones that train the most
# configurations first (a job of one k: its number of configurations), so that the longest do not
# start last; the figures made from nothing (2, 8, 9) with the training jobs, not left for the end.
PRIORITY = {"data": 100, "codec": 50, "training": 1, "report": 0}
# Device and logging: passed as an object, which Snakemake leaves out of its rerun trigger.
RUNTIME = Runtime.from_config(config, workflow.basedir)
# The tables and figures of this run (targetcodec/report/outputs.py), each built by its own rule.
REPORT_OUTPUTS = plan.report_outputs(config)


wildcard_constraints:
    dataset="[A-Za-z0-9_]+",
    configuration="[a-z_]+(-k[0-9]+)?",
    seed="[0-9]+",
    k="[0-9]+",


def datasets():
    return plan.datasets(config)


def dataset_code(dataset):
    return config["datasets"][dataset].get("code", dataset)


def all_run_files():
    """Every reported seed of every trained configuration (the k sweep's extra k too) on every dataset."""
    labels = [c.label for c in plan.trained_configurations(config)]
    return [
        path
        for dataset in datasets()
        for path in expand(
            f"{RESULTS}/runs/{dataset}/{{configuration}}/seed{{seed}}.json", configuration=labels, seed=SEEDS
        )
    ]


def all_final_selected_files():
    """The sweep choices every reported run was trained with (aggregation checks them): a run that
    predates its sweep is rerun even where the sweep shares its job."""
    return [
        selected_file(param, dataset, c.label)
        for dataset in datasets()
        for c in plan.trained_configurations(config)
        for param in plan.final_sweeps(config, c.label)
    ]


def selected_file(param, dataset, label):
    return f"{RESULTS}/selected/{param}/{dataset}/{label}.json"


def final_selected_inputs(wildcards):
    return [
        selected_file(p, wildcards.dataset, wildcards.configuration)
        for p in plan.final_sweeps(config, wildcards.configuration)
    ]


def group_training_jobs(labels):
    """The params.jobs of a job group: what each of its configurations reads (training_job)."""
    return lambda wildcards: [job_params(config, wildcards.dataset, label) for label in labels]


def group_codec_outputs(labels, extension):
    """The pre-trained codec (eq. 7) a job group makes first, if it needs one."""
    k = plan.group_codec_k(config, labels)
    return [] if k is None else [f"{RESULTS}/codecs/{{dataset}}/k{k}.{extension}"]


def swept_labels(param):
    return plan.swept_labels(config, param)


def all_sweep_files():
    """Every sweep table: learning rate for every trained configuration, lambdas for end to end."""
    return [
        f"{RESULTS}/sweeps/{param}/{dataset}/{label}.parquet"
        for dataset in datasets()
        for param, label in plan.sweep_tables(config)
    ]


def training_job(wildcards):
    """What a training or sweep job reads (targetcodec.train.settings.job_params): the settings its
    numbers depend on and no others, so that a change reruns the jobs it affects and only those."""
    return job_params(config, wildcards.dataset, wildcards.configuration)


def codec_input(wildcards):
    """The pre-trained codec (eq. 7) a training job needs, if its method uses one."""
    if plan.needs_pretrained_codec(config, wildcards.configuration):
        return f"{RESULTS}/codecs/{wildcards.dataset}/k{Configuration.parse(wildcards.configuration).k}.npz"
    return []


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
    try:
        files = [str(p) for p in osv5m_input_files(osv5m_root())]
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
