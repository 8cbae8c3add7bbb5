"""The workflow's plan, from its config alone: which datasets and configurations it trains, which
sweeps run and in which jobs, how the configurations are grouped into jobs and how seeds are split
into packs. Pure functions of the (validated) config: the rules (workflow/rules/*.smk) call them,
and tests/test_plan.py counts the jobs they make without running Snakemake.

The training of one (dataset, configuration) runs in one of three kinds of job:

- ``sweep_and_train``: its learning-rate sweep and its reported seeds in one job, where its runs read
  no other sweep and all seeds form one pack (``sweeps.lr.one_job``); with ``sweeps.lr.job_per: k``
  every such configuration of one k shares one job (``sweep_and_train_k5``, ..., ``sweep_and_train_no_k``);
- ``sweep_<param>``: a sweep of its own (the learning rate of the other configurations, the lambdas
  of end to end);
- ``train`` (``train_seeds0_4``, ... with ``pack_size``): a pack of its reported seeds.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from ..methods import METHODS
from .settings import Configuration, configurations, job_groups, method_settings, pack_name, seed_list, seed_packs

LAMBDAS = ("lambda_kl", "lambda_auto")
SWEPT = ("lr", *LAMBDAS)


def datasets(config: dict) -> list[str]:
    """The datasets of the benchmark's stages this run covers: ``run_datasets`` if given, else every
    enabled entry; an osv5m dataset has its own stage (workflow/rules/osv5m.smk)."""
    return [key for key in selected_datasets(config) if config["datasets"][key].get("source") != "osv5m"]


def selected_datasets(config: dict) -> list[str]:
    """Every dataset of the run, of any stage: ``run_datasets`` if given, else every enabled entry."""
    return config.get("run_datasets") or [key for key, spec in config["datasets"].items() if spec.get("enabled", True)]


def packs(config: dict) -> list[list[int]]:
    """The reported seeds split into the packs that train together, one job each."""
    return seed_packs(seed_list(config), config["pack_size"])


def train_rule(pack: list[int], packs: list[list[int]]) -> str:
    """The name of the rule that trains a pack: ``train``, or ``train_seeds0_4``, ... for several."""
    return "train" if len(packs) == 1 else f"train_{pack_name(pack)}".replace("-", "_")


def reported_configurations(config: dict) -> list[Configuration]:
    """The rows of Tables 3-5."""
    return configurations(config["methods"], config["k_values"])


def k_sweep_configurations(config: dict) -> list[Configuration]:
    """The extra k of Figure 4 (centre), for the methods of the k sweep."""
    k = config["sweeps"]["k"]
    if not k["enabled"]:
        return []
    reported = reported_configurations(config)
    return [c for c in configurations(k["methods"], k["grid"]) if c not in reported]


def trained_configurations(config: dict) -> list[Configuration]:
    """Every configuration the run trains on each dataset: the reported ones, then the k sweep's."""
    return reported_configurations(config) + k_sweep_configurations(config)


def lambda_sweeps(config: dict) -> list[str]:
    """The lambdas of eq. (8) swept for end to end (Table 6, Figure 4 bottom)."""
    if "end_to_end" not in config["methods"]:
        return []
    return [p for p in LAMBDAS if config["sweeps"][p]["enabled"]]


def final_sweeps(config: dict, label: str) -> list[str]:
    """The sweeps whose choices a configuration's reported runs take: the learning rate, and the
    lambdas set to "selected"."""
    params = ["lr"] if config["sweeps"]["lr"]["enabled"] else []
    if Configuration.parse(label).method == "end_to_end":
        params += [p for p in LAMBDAS if config["end_to_end"][p] == "selected"]
    return params


def one_job_methods(config: dict) -> list[str]:
    """Methods whose learning-rate sweep and reported runs share a job (``sweep_and_train``): those
    whose runs read no other sweep, when all seeds form one pack (``sweeps.lr.one_job``)."""
    lr = config["sweeps"]["lr"]
    if not (lr["enabled"] and lr["one_job"] and len(packs(config)) == 1):
        return []
    return sorted({c.method for c in trained_configurations(config) if final_sweeps(config, c.label) == ["lr"]})


def one_job_configurations(config: dict) -> list[Configuration]:
    methods = one_job_methods(config)
    return [c for c in trained_configurations(config) if c.method in methods]


def sweep_and_train_groups(config: dict) -> dict[str, list[str]]:
    """The jobs of several configurations (``sweeps.lr.job_per: k``): {group: labels}, one job per
    k (``sweep_and_train_k5``, ...), its configurations one after the other; {} with one job per
    configuration."""
    if config["sweeps"]["lr"]["job_per"] != "k":
        return {}
    return job_groups(one_job_configurations(config))


def swept_labels(config: dict, param: str) -> list[str]:
    """The configurations a parameter's sweep job (``sweep_<param>``) trains: the learning rate for
    those whose reported runs are trained in a job of their own (not sweep_and_train), the lambdas
    for end to end."""
    if param in LAMBDAS:
        return lambda_sweep_labels(config) if param in lambda_sweeps(config) else []
    if not config["sweeps"]["lr"]["enabled"]:
        return []
    one_job = one_job_configurations(config)
    return [c.label for c in trained_configurations(config) if c not in one_job]


def lambda_sweep_labels(config: dict) -> list[str]:
    return [c.label for c in reported_configurations(config) if c.method == "end_to_end"]


def sweep_tables(config: dict) -> list[tuple[str, str]]:
    """Every sweep a dataset runs, (param, label): the learning rate of every trained configuration,
    the lambdas of end to end."""
    tables = [("lr", c.label) for c in trained_configurations(config)] if config["sweeps"]["lr"]["enabled"] else []
    return tables + [(param, label) for param in lambda_sweeps(config) for label in lambda_sweep_labels(config)]


def needs_pretrained_codec(config: dict, label: str) -> bool:
    """Whether a configuration's method starts from the pre-trained codec (eq. 7)."""
    method = METHODS[Configuration.parse(label).method]
    return method.uses_k and method.needs_pretrained_codec(method_settings(config))


def group_codec_k(config: dict, labels: list[str]) -> int | None:
    """The k of the codec (eq. 7) a job group pre-trains first, if one of its configurations needs
    it (its configurations share k): pre-trained in the job, not in a job of its own."""
    needed = [Configuration.parse(label) for label in labels if needs_pretrained_codec(config, label)]
    return needed[0].k if needed else None


def sweep_shown(config: dict, sweep: str) -> bool:
    """Whether the sweep an output shows runs: Table 6 and Figure 4 (centre, bottom)."""
    if sweep == "lambda_kl":
        return "lambda_kl" in lambda_sweeps(config)
    if sweep == "k":
        k = config["sweeps"]["k"]
        return bool(k_sweep_configurations(config) or (k["enabled"] and k["methods"]))
    return True


def report_outputs(config: dict) -> list:
    """The tables and figures of this run (targetcodec/report/outputs.py)."""
    from ..report.outputs import OUTPUTS

    return [o for o in OUTPUTS.values() if sweep_shown(config, o.shows)]


@dataclass(frozen=True)
class PlannedJob:
    """One job that trains: its rule, its dataset and the configurations it trains, in order."""

    rule: str
    dataset: str
    labels: tuple[str, ...]


def training_jobs(config: dict) -> list[PlannedJob]:
    """Every job of the run that trains (the rules train*, sweep*), as Snakemake plans them from
    scratch."""
    groups = sweep_and_train_groups(config)
    one_job = [c.label for c in one_job_configurations(config)]
    trained_alone = [c.label for c in trained_configurations(config) if c.label not in one_job]
    all_packs = packs(config)
    jobs = []
    for dataset in datasets(config):
        if groups:
            jobs += [PlannedJob(f"sweep_and_train_{g}", dataset, tuple(labels)) for g, labels in groups.items()]
        else:
            jobs += [PlannedJob("sweep_and_train", dataset, (label,)) for label in one_job]
        jobs += [
            PlannedJob(train_rule(pack, all_packs), dataset, (label,)) for label in trained_alone for pack in all_packs
        ]
        jobs += [
            PlannedJob(f"sweep_{param}", dataset, (label,)) for param in SWEPT for label in swept_labels(config, param)
        ]
    return jobs


def codec_jobs(config: dict) -> list[tuple[str, int]]:
    """The (dataset, k) of every codec pre-trained in a job of its own (rule pretrain_codec): those
    the trained configurations need, less those a job group pre-trains itself."""
    made_in_groups = {group_codec_k(config, labels) for labels in sweep_and_train_groups(config).values()}
    needed = {c.k for c in trained_configurations(config) if needs_pretrained_codec(config, c.label)}
    return [(dataset, k) for dataset in datasets(config) for k in sorted(needed - made_in_groups)]


def job_counts(config: dict, data_cache: str | None = None) -> dict[str, int]:
    """How many jobs of each rule a run from scratch plans for the benchmark's datasets (not the
    OSV5M stage), as Snakemake's "Job stats" table counts them."""
    from ..data.sources import get_source, raw_files

    keys = datasets(config)
    cache = data_cache if data_cache is not None else config["data_cache"]
    counts = Counter()
    for key in keys:
        spec = config["datasets"][key]
        if get_source(key, spec).needs_network:
            counts["download_dataset"] += len(raw_files(key, spec, cache))
    counts["prepare"] = len(keys)
    counts.update(job.rule for job in training_jobs(config))
    counts["pretrain_codec"] = len(codec_jobs(config))
    if keys:
        counts["aggregate"] = 1
        counts["aggregate_sweeps"] = int(bool(sweep_tables(config)))
        counts.update(o.name for o in report_outputs(config))
        counts.update(["linear_regression", "paper_comparison"])  # the comparison with the paper (report.smk)
    counts["all"] = 1
    return {rule: n for rule, n in counts.items() if n}
