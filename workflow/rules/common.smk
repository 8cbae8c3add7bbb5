# Helpers shared by every rule: config validation, the dataset and configuration lists, and paths.

from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from targetcodec.train.settings import Configuration, configurations, seed_list, seed_packs
from targetcodec.config import check_config, coerce_command_line_values, describe_validation_error

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
# Resources of every rule that trains networks (train*, sweep*): only these ask for a GPU, so profiles
# need no list of rule names. A new training rule takes `resources: **TRAINING_RESOURCES`.
TRAINING_RESOURCES = dict(config["training_resources"])


wildcard_constraints:
    dataset="[A-Za-z0-9_]+",
    config="[a-z_]+(-k[0-9]+)?",
    param="lr|lambda_kl|lambda_auto",
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
    return expand(f"{RESULTS}/runs/{dataset}/{{config}}/seed{{seed}}.json", config=labels, seed=SEEDS)


def all_run_files():
    return [path for dataset in datasets() for path in run_files(dataset)]


def selected_file(param, dataset, label):
    return f"{RESULTS}/selected/{param}/{dataset}/{label}.json"


def final_selected_inputs(wildcards):
    """Values the reported runs take from sweeps: the learning rate, and lambdas set to "selected"."""
    files = [selected_file("lr", wildcards.dataset, wildcards.config)] if SWEEPS["lr"]["enabled"] else []
    if Configuration.parse(wildcards.config).method == "end_to_end":
        files += [
            selected_file(p, wildcards.dataset, wildcards.config)
            for p in ("lambda_kl", "lambda_auto")
            if config["end_to_end"][p] == "selected"
        ]
    return files


def sweep_selected_inputs(wildcards):
    """A lambda sweep runs at the selected learning rate."""
    if wildcards.param != "lr" and SWEEPS["lr"]["enabled"]:
        return [selected_file("lr", wildcards.dataset, wildcards.config)]
    return []


def lambda_sweep_labels():
    return [c.label for c in CONFIGURATIONS if c.method == "end_to_end"]


def all_sweep_files():
    """Every sweep table: learning rate for every trained configuration, lambdas for end to end."""
    files = []
    for dataset in datasets():
        if SWEEPS["lr"]["enabled"]:
            files += [f"{RESULTS}/sweeps/lr/{dataset}/{c.label}.parquet" for c in CONFIGURATIONS + K_SWEEP_CONFIGURATIONS]
        for param in LAMBDA_SWEEPS:
            files += [f"{RESULTS}/sweeps/{param}/{dataset}/{label}.parquet" for label in lambda_sweep_labels()]
    return files


def training_settings(wildcards):
    """The settings a job's numbers depend on (a change reruns the job, and only the jobs it affects)."""
    from targetcodec.train.settings import relevant_settings

    return relevant_settings(config, wildcards.dataset, wildcards.config)


def codec_input(wildcards):
    """The pre-trained codec (eq. 7) a training job needs, if its method uses one."""
    from targetcodec.train.settings import method_settings
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
ENCODER_FIGURES = ["figure2_encoders", "figure8_fixed_grid_encoder", "figure9_learnt_encoder"]
TABLE_EXTENSIONS = ["md", "csv", "tex"]
FIGURE_EXTENSIONS = ["png", "pdf"]


def table_files(names):
    return expand(f"{RESULTS}/tables/{{table}}.{{ext}}", table=names, ext=TABLE_EXTENSIONS)


def figure_files(names):
    return expand(f"{RESULTS}/figures/{{figure}}.{{ext}}", figure=names, ext=FIGURE_EXTENSIONS)


def sweep_outputs():
    """Outputs that exist only when their sweep is on: Table 6, Figure 4 centre and bottom."""
    out = []
    if all_sweep_files():
        out.append(f"{RESULTS}/sweeps.parquet")
    if "lambda_kl" in LAMBDA_SWEEPS:
        out += table_files(["table6_lambda_kl"]) + figure_files(["figure4_bottom_lambda_kl"])
    if K_SWEEP_CONFIGURATIONS or (SWEEPS["k"]["enabled"] and SWEEPS["k"]["methods"]):
        out += figure_files(["figure4_centre_k"])
    return out


def all_outputs():
    if not datasets():
        return []
    return (
        [f"{RESULTS}/metrics.parquet"]
        + table_files(TABLES)
        + figure_files(FIGURES + ENCODER_FIGURES)
        + sweep_outputs()
    )
