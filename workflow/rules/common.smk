# Helpers shared by every rule: config validation, the dataset and configuration lists, and paths.

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from targetcodec.benchmark.settings import Configuration, configurations, seed_list, seed_packs
from targetcodec.benchmark.checks import check_config, coerce_command_line_values, describe_validation_error

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
CONFIGURATIONS = configurations(config["methods"], config["k_values"])
# Resources of every rule that trains networks (train*, sweep*): only these ask for a GPU, so profiles
# need no list of rule names. A new training rule takes `resources: **TRAINING_RESOURCES`.
TRAINING_RESOURCES = dict(config["training_resources"])


wildcard_constraints:
    dataset="[A-Za-z0-9_]+",
    config="[a-z_]+(-k[0-9]+)?",
    seed="[0-9]+",
    k="[0-9]+",


def datasets():
    """The datasets this run covers: run_datasets if given, else every enabled entry."""
    if config["run_datasets"]:
        return list(config["run_datasets"])
    return [key for key, spec in config["datasets"].items() if spec.get("enabled", True)]


def dataset_code(dataset):
    return config["datasets"][dataset].get("code", dataset)


def run_files(dataset, labels=None):
    labels = labels or [c.label for c in CONFIGURATIONS]
    return expand(f"{RESULTS}/runs/{dataset}/{{config}}/seed{{seed}}.json", config=labels, seed=SEEDS)


def all_run_files():
    return [path for dataset in datasets() for path in run_files(dataset)]


def codec_input(wildcards):
    """The pre-trained codec (eq. 7) a training job needs, if its method uses one."""
    from targetcodec.benchmark.settings import method_settings
    from targetcodec.methods import METHODS

    configuration = Configuration.parse(wildcards.config)
    method = METHODS[configuration.method]
    if method.uses_k and method.needs_pretrained_codec(method_settings(config)):
        return f"{RESULTS}/codecs/{wildcards.dataset}/k{configuration.k}.npz"
    return []


TABLES = ["table3_mae", "table4_rmse", "table5_r2"]
FIGURES = [
    "figure3_mae_normalised",
    "figure4_top_mae_average",
    "figure5_rmse_r2_average",
    "figure6_rmse_normalised",
    "figure7_r2_normalised",
]


def all_outputs():
    return (
        [f"{RESULTS}/metrics.parquet"]
        + expand(f"{RESULTS}/tables/{{table}}.{{ext}}", table=TABLES, ext=["md", "csv", "tex"])
        + expand(f"{RESULTS}/figures/{{figure}}.{{ext}}", figure=FIGURES, ext=["png", "pdf"])
    )
