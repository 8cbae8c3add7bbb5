"""Fault class bad_config: the config schema has no open doors. Every mapping is closed, each dataset
source accepts its own keys only, and a wrong key stops the run with a message that names it and
the nearest valid key.

Each bad configuration goes through what workflow/rules/common.smk does (Snakemake's ``validate``
with the project's schema, ``describe_validation_error``, ``check_config``) on config.yaml merged
with the tiny preset, as ``--configfile`` merges them; one goes through ``snakemake -n`` itself. Every
preset is accepted, alone and as the command in its header runs it (the layers it names first, its
``--config`` entries).
"""

import copy
import shlex
from pathlib import Path

import pytest
import yaml
from snakemake.cli import parse_config
from snakemake.exceptions import WorkflowError
from snakemake.utils import update_config, validate

from targetcodec.config import check_config, coerce_command_line_values, describe_validation_error
from workflow_helpers import copy_workflow, snakemake

pytestmark = pytest.mark.fault("bad_config")  # counted by tests/fault_classes.py

REPO = Path(__file__).resolve().parents[1]
SCHEMA = str(REPO / "workflow" / "schemas" / "config.schema.yaml")
BASE = yaml.safe_load((REPO / "config.yaml").read_text())


def merged(*layers: dict) -> dict:
    config = copy.deepcopy(BASE)
    for layer in layers:
        update_config(config, copy.deepcopy(layer))
    return config


def refusal(config: dict) -> str:
    """The message common.smk stops with ("Invalid configuration: <this>"), or "" if accepted."""
    try:
        validate(config, schema=SCHEMA)
    except WorkflowError as e:
        return describe_validation_error(e.__context__)
    try:
        check_config(config)
    except ValueError as e:
        return str(e)
    return ""


TINY = yaml.safe_load((REPO / "presets" / "tiny.yaml").read_text())
MINE = {"source": "file", "path": "mine.csv", "target": "y"}

# (override as YAML, the key the message must name, words it must contain)
BAD = [
    # typos in dataset entries, which the schema once let through
    ("datasets: {ailerons: {dorp: [x]}}", "datasets.ailerons.dorp", "did you mean 'drop'?"),
    ("datasets: {diabetes: {tagret: y}}", "datasets.diabetes.tagret", "did you mean 'target'?"),
    (
        "datasets: {mine: {source: file, path: m.csv, target: y, seperator: ';'}}",
        "datasets.mine.seperator",
        "did you mean 'separator'?",
    ),
    ("datasets: {ailerons: {min_distict: 5}}", "datasets.ailerons.min_distict", "did you mean 'min_distinct'?"),
    ("datasets: {synthetic_2d: {nosie: 0.1}}", "datasets.synthetic_2d.nosie", "did you mean 'noise'?"),
    ("datasets: {retinamnist: {falg: retinamnist}}", "datasets.retinamnist.falg", "did you mean 'flag'?"),
    (
        "datasets: {ailerons: {extreme_value: drop}}",
        "datasets.ailerons.extreme_value",
        "did you mean 'extreme_values'?",
    ),
    ("datasets: {wine_quality: {sha265: abc}}", "datasets.wine_quality.sha265", "did you mean 'sha256'?"),
    # a key of another source
    ("datasets: {ailerons: {n: 300}}", "datasets.ailerons.n", "not a key of a dataset of source openml or uci"),
    (
        "datasets: {synthetic_2d: {target: y1}}",
        "datasets.synthetic_2d.target",
        "not a key of a dataset of source synthetic",
    ),
    (
        "datasets: {retinamnist: {min_distinct: 3}}",
        "datasets.retinamnist.min_distinct",
        "not a key of a dataset of source medmnist",
    ),
    ("datasets: {diabetes: {path: d.csv}}", "datasets.diabetes.path", "not a key of a dataset of source sklearn"),
    (
        "datasets: {mine: {source: file, path: m.csv, target: y, id: 3}}",
        "datasets.mine.id",
        "not a key of a dataset of source file",
    ),
    ("datasets: {osv5m: {target: lat}}", "datasets.osv5m.target", "not a key of a dataset of source osv5m"),
    # wrong values of dataset keys
    ("datasets: {mine: {source: openm1, id: 3, target: y}}", "datasets.mine.source", "did you mean 'openml'?"),
    (
        "datasets: {ailerons: {extreme_values: ignore}}",
        "datasets.ailerons.extreme_values",
        "'ignore' is not one of ['stop', 'drop']",
    ),
    ("datasets: {ailerons: {target_transform: log10}}", "datasets.ailerons.target_transform", "did you mean 'log'?"),
    # every other mapping
    ("method: [least_squares]", "method", "did you mean 'methods'?"),
    ("seed: 3", "seed", "did you mean 'seeds'?"),
    ("dowload: {attempts: 2}", "dowload", "did you mean 'download'?"),
    ("download: {atempts: 2}", "download.atempts", "did you mean 'attempts'?"),
    ("split: {tset: 0.1}", "split.tset", "did you mean 'test'?"),
    ("architecture: {mlp: {widht: 64}}", "architecture.mlp.widht", "did you mean 'width'?"),
    ("architecture: {cnn: {fc_widht: 64}}", "architecture.cnn.fc_widht", "did you mean 'fc_width'?"),
    ("architecture: {rnn: {width: 64}}", "architecture.rnn", "unknown key"),
    ("training: {mlp: {patiense: 5}}", "training.mlp.patiense", "did you mean 'patience'?"),
    ("training: {cnn: {weight_decy: 0.1}}", "training.cnn.weight_decy", "did you mean 'weight_decay'?"),
    ("training: {grad_clipping: 1.0}", "training.grad_clipping", "did you mean 'grad_clip'?"),
    ("codec: {alfa: 0.1}", "codec.alfa", "did you mean 'alpha'?"),
    ("codec: {pretrain: {step: 10}}", "codec.pretrain.step", "did you mean 'steps'?"),
    ("end_to_end: {lamda_kl: 0.1}", "end_to_end.lamda_kl", "did you mean 'lambda_kl'?"),
    ("sweeps: {lamda_kl: {enabled: false}}", "sweeps.lamda_kl", "did you mean 'lambda_kl'?"),
    ("sweeps: {lr: {grids: [0.1]}}", "sweeps.lr.grids", "did you mean 'grid'?"),
    (
        "sweeps: {lambda_kl: {figure_datset: diamonds}}",
        "sweeps.lambda_kl.figure_datset",
        "did you mean 'figure_dataset'?",
    ),
    ("sweeps: {k: {method: [soft_binning]}}", "sweeps.k.method", "did you mean 'methods'?"),
    ("significance: {refernce: huber}", "significance.refernce", "did you mean 'reference'?"),
    ("figures: {kk: 5}", "figures.kk", "did you mean 'k'?"),
    # wrong values
    ("methods: [least_sqares]", "methods[0]", "did you mean 'least_squares'?"),
    ("significance: {reference: hubber}", "significance.reference", "did you mean 'huber'?"),
    ("training: {schedule: cosin}", "training.schedule", "did you mean 'cosine'?"),
    ("end_to_end: {codec_init: pretrain}", "end_to_end.codec_init", "did you mean 'pretrained'?"),
    ("end_to_end: {kl_reduction: avg}", "end_to_end.kl_reduction", "'sum'"),
    (
        "codec: {grid_by_method: {hard_binning: midpoint}}",
        "codec.grid_by_method.hard_binning",
        "did you mean 'midpoints'?",
    ),
    (
        "codec: {grid_by_method: {hard_bining: midpoints}}",
        "codec.grid_by_method.hard_bining",
        "did you mean 'hard_binning'?",
    ),
    ("codec: {grid_by_method: {least_squares: midpoints}}", "codec.grid_by_method.least_squares", "with k classes"),
    ("k_values: [1, 5]", "k_values[0]", "less than the minimum of 2"),
    ("split: {train: 0.7, val: 0.1, test: 0.1}", "split", "must be 1"),
    ("run_datasets: [no_such_dataset]", "run_datasets", "no_such_dataset"),
]


@pytest.mark.parametrize("override, key, words", BAD, ids=[key for _, key, _ in BAD])
def test_bad_config_is_refused(override, key, words):
    message = refusal(merged(TINY, yaml.safe_load(override)))
    assert f"config key '{key}'" in message, message
    assert words in message, message


def test_an_unknown_key_message_lists_the_keys_of_its_source():
    message = refusal(merged(TINY, {"datasets": {"ailerons": {"dorp": ["x"]}}}))
    assert message.startswith("config key 'datasets.ailerons.dorp': not a key of a dataset of source openml or uci")
    assert "its keys are source, code, enabled, model, target, drop" in message


PRESETS = sorted((REPO / "presets").rglob("*.yaml"))


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: str(p.relative_to(REPO / "presets")))
def test_every_preset_and_config_yaml_are_accepted(preset):
    assert refusal(merged()) == ""
    assert refusal(merged(yaml.safe_load(preset.read_text()))) == ""


def header_commands(path: Path) -> list[str]:
    """The ``snakemake`` commands of a preset's leading comment, each joined across its ``\\`` lines."""
    commands, current = [], None
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        text = line.lstrip("# ").split("   #")[0].strip()
        if current is not None:
            current += " " + text
        elif text.startswith("snakemake "):
            current = text
        if current is not None:
            if current.endswith("\\"):
                current = current[:-1].rstrip()
            else:
                commands.append(current)
                current = None
    return commands


def parse_command(command: str) -> tuple[list[str], list[str]]:
    """The ``--configfile`` files and ``--config`` entries of a snakemake command line."""
    files, entries, option = [], [], None
    for token in shlex.split(command)[1:]:
        if token == "--":
            break
        if token.startswith("-"):
            option = token
        elif option == "--configfile":
            files.append(token)
        elif option == "--config":
            entries.append(token)
    return files, entries


def command_config(command: str) -> dict:
    """config.yaml, then each ``--configfile`` in order, then ``--config``, as Snakemake merges them and
    common.smk coerces them; a named file that does not exist fails the test, naming it."""
    files, entries = parse_command(command)
    missing = [name for name in files if not (REPO / name).is_file()]
    assert not missing, f"{command}: names missing files {missing}"
    config = merged(*(yaml.safe_load((REPO / name).read_text()) for name in files), parse_config(entries))
    config.update(coerce_command_line_values(dict(config)))
    return config


COMMANDS = [(path, command) for path in PRESETS for command in header_commands(path)]


def test_every_preset_but_the_tests_own_names_its_command():
    named = {path.name for path, _ in COMMANDS}
    assert {p.name for p in PRESETS} - named == {"tiny.yaml"}


@pytest.mark.parametrize(("preset", "command"), COMMANDS, ids=lambda v: v.name if isinstance(v, Path) else "")
def test_the_command_in_a_presets_header_is_accepted(preset, command):
    # What a user copies from the header (and README, docs/results.md): the preset with the layers
    # its command names before it, and its --config entries.
    assert str(preset.relative_to(REPO)) in parse_command(command)[0], f"the command does not name it: {command}"
    assert refusal(command_config(command)) == "", command


def test_a_header_command_with_a_bad_key_is_refused():
    command = (
        "snakemake --cores all --configfile presets/shared_data.yaml presets/comparison.yaml "
        "--config 'end_to_end={kl_reduktion: mean}'"
    )
    assert "end_to_end.kl_reduktion" in refusal(command_config(command))


def test_header_commands_are_read_across_continuation_lines(tmp_path):
    preset = tmp_path / "p.yaml"
    preset.write_text(
        "# A preset.\n"
        "#   snakemake --cores all --configfile a.yaml b.yaml \\\n"
        "#       --config 'run_datasets=[x,y]' seeds=3   # a comment\n"
        "results: r\n"
        "# snakemake --cores 1 --configfile not_a_header.yaml\n"
    )
    (command,) = header_commands(preset)
    assert parse_command(command) == (["a.yaml", "b.yaml"], ["run_datasets=[x,y]", "seeds=3"])


def test_every_dataset_key_the_docs_name_is_accepted_by_its_source():
    """The keys docs/datasets.md uses in examples, on the sources they belong to."""
    entries = {
        "mine": {
            **MINE,
            "code": "MI",
            "drop": ["b"],
            "min_distinct": 5,
            "target_transform": "log",
            "extreme_values": "drop",
            "separator": ";",
            "sha256": "0" * 64,
            "enabled": True,
            "model": "mlp",
        },
        "concrete": {
            "source": "uci",
            "id": 165,
            "target": "strength",
            "served_target_transform": "none",
            "sha256": "0" * 64,
        },
        "synth": {
            "source": "synthetic",
            "n": 100,
            "features": 6,
            "targets": 1,
            "noise": 0.1,
            "seed": 3,
            "drop": ["x6"],
        },
        "retina": {"source": "medmnist", "flag": "retinamnist", "size": 28, "model": "cnn", "sha256": "0" * 64},
        "bundled": {"source": "sklearn", "name": "diabetes", "target": "target", "extreme_values": "stop"},
    }
    assert refusal(merged(TINY, {"datasets": entries, "run_datasets": list(entries)})) == ""


@pytest.mark.slow
def test_a_typo_in_a_dataset_entry_stops_snakemake_before_any_job(tmp_path):
    workdir = copy_workflow(tmp_path / "typo", git=False)
    (workdir / "typo.yaml").write_text("datasets:\n  diabetes: {dorp: [age]}\n")
    proc = snakemake(workdir, "-n", "--configfile", "presets/tiny.yaml", "typo.yaml", check=False)
    err = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert (
        "Invalid configuration: config key 'datasets.diabetes.dorp': not a key of a dataset of source sklearn "
        "(did you mean 'drop'?)" in err
    ), err
    assert not (workdir / "results").exists()
