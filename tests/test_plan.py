"""The workflow's plan (targetcodec/train/plan.py) from the config alone: which jobs train what, and
how many jobs of each rule a run from scratch makes; checked against Snakemake's own dry run."""

import copy
from pathlib import Path

import pytest
import yaml
from snakemake.utils import update_config, validate

from targetcodec.osv5m.settings import stage_plan
from targetcodec.train import plan
from workflow_helpers import copy_workflow, job_counts, snakemake

REPO = Path(__file__).resolve().parents[1]
SCHEMA = str(REPO / "workflow" / "schemas" / "config.schema.yaml")
K_GROUPS = ["no_k", "k3", "k5", "k9", "k15", "k25", "k35", "k45"]  # k_values and the k sweep's grid


def config(preset=None, **layer) -> dict:
    """config.yaml, then a preset, then ``layer``, merged and completed as the workflow sees them."""
    merged = yaml.safe_load((REPO / "config.yaml").read_text())
    for more in ([yaml.safe_load((REPO / "presets" / preset).read_text())] if preset else []) + [layer]:
        update_config(merged, copy.deepcopy(more))
    validate(merged, schema=SCHEMA)
    return merged


def training(counts: dict) -> int:
    return sum(n for rule, n in counts.items() if rule.startswith(("train", "sweep")))


def test_the_full_grid_plans_123_jobs_88_of_them_training():
    counts = plan.job_counts(config())
    assert sum(counts.values()) == 123 and training(counts) == 88
    # per dataset a job per k (each configuration's learning-rate sweep and then its seeds, one
    # configuration after the other), and the lambda_KL sweeps of end to end in jobs of their own
    assert counts == {
        "download_dataset": 8,
        "prepare": 8,
        **{f"sweep_and_train_{group}": 8 for group in K_GROUPS},
        "sweep_lambda_kl": 8 * 3,
        "aggregate": 1,
        "aggregate_sweeps": 1,
        **{o.name: 1 for o in plan.report_outputs(config())},
        "linear_regression": 1,
        "paper_comparison": 1,
        "all": 1,
    }
    assert len(plan.report_outputs(config())) == 14  # Tables 3-6, Figures 2-9 (three of Figure 4)


def test_the_demo_preset_plans_39_jobs_18_of_them_training():
    demo = config("demo.yaml")
    counts = plan.job_counts(demo)
    assert sum(counts.values()) == 39 and training(counts) == 18
    assert "download_dataset" not in counts and counts["prepare"] == 2
    assert {rule: n for rule, n in counts.items() if rule.startswith("sweep_and_train")} == {
        f"sweep_and_train_{group}": 2 for group in ("no_k", "k3", "k5", "k15", "k25", "k45")
    }
    assert counts["sweep_lambda_kl"] == 2 * 3  # end to end at k = 5, 15, 25


def test_a_job_group_trains_every_configuration_of_its_k_and_makes_the_codec_it_needs():
    full = config()
    groups = plan.sweep_and_train_groups(full)
    assert sorted(groups) == sorted(K_GROUPS)
    assert groups["no_k"] == ["least_squares", "huber"]
    assert groups["k5"] == [f"{m}-k5" for m in full["methods"] if m not in ("least_squares", "huber")]
    # the k sweep's extra k, for its methods only
    assert groups["k45"] == [f"{m}-k45" for m in full["sweeps"]["k"]["methods"]]
    # the trained encoder (eq. 7) is pre-trained in the job of its k, none in a job of its own
    assert plan.group_codec_k(full, groups["k5"]) == 5 and plan.group_codec_k(full, groups["no_k"]) is None
    assert plan.codec_jobs(full) == []


def test_one_job_per_configuration_pretrains_the_codecs_in_jobs_of_their_own():
    counts = plan.job_counts(config(sweeps={"lr": {"job_per": "configuration"}}))
    assert counts["sweep_and_train"] == 8 * 25 and counts["pretrain_codec"] == 8 * 7
    assert sum(counts.values()) == 315


def test_packs_of_seeds_train_apart_from_their_sweep():
    """Seeds split into packs cannot share a job with their learning-rate sweep: a sweep job and a
    job per pack for every configuration."""
    packed = config(pack_size=5)
    assert plan.packs(packed) == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    assert plan.one_job_methods(packed) == [] and plan.sweep_and_train_groups(packed) == {}
    counts = plan.job_counts(packed)
    assert counts["train_seeds0_4"] == counts["train_seeds5_9"] == counts["sweep_lr"] == 8 * 25
    assert sum(counts.values()) == 715
    assert plan.train_rule([0, 1], [[0, 1]]) == "train" and plan.train_rule([3], [[2], [3]]) == "train_seed3"


def test_sweeps_that_a_configuration_reads_keep_it_out_of_a_shared_job():
    """End to end with lambda_KL "selected" reads the lambda_KL sweep, which reads its learning-rate
    sweep: its three jobs (lr sweep, lambda_KL sweep, seeds) run one after the other."""
    selected = config(end_to_end={"lambda_kl": "selected"})
    assert plan.final_sweeps(selected, "end_to_end-k5") == ["lr", "lambda_kl"]
    assert plan.final_sweeps(selected, "soft_binning-k5") == ["lr"]
    assert "end_to_end" not in plan.one_job_methods(selected)
    assert plan.swept_labels(selected, "lr") == plan.swept_labels(selected, "lambda_kl")
    assert plan.swept_labels(selected, "lambda_kl") == ["end_to_end-k5", "end_to_end-k15", "end_to_end-k25"]
    jobs = [job for job in plan.training_jobs(selected) if job.dataset == "ailerons" and "end_to_end-k5" in job.labels]
    assert [job.rule for job in jobs] == ["train", "sweep_lr", "sweep_lambda_kl"]


def test_without_sweeps_every_configuration_trains_in_a_job_per_pack():
    bare = config(sweeps={p: {"enabled": False} for p in ("lr", "lambda_kl", "lambda_auto", "k")})
    assert plan.lambda_sweeps(bare) == [] and plan.sweep_tables(bare) == []
    assert not plan.sweep_shown(bare, "lambda_kl") and not plan.sweep_shown(bare, "k")
    counts = plan.job_counts(bare)
    assert counts["train"] == 8 * 17 and "aggregate_sweeps" not in counts
    assert not any(rule.startswith("sweep") for rule in counts)


def test_the_osv5m_stage_is_planned_apart():
    osv = config(run_datasets=["osv5m"], osv5m={"seeds": 4, "pack_size": 2})
    assert plan.datasets(osv) == [] and stage_plan(osv).dataset == "osv5m"
    assert stage_plan(osv).packs == [[0, 1], [2, 3]]
    osv["osv5m"]["parallel"] = "ddp"
    assert stage_plan(osv).packs == [[0], [1], [2], [3]]


@pytest.mark.slow
@pytest.mark.parametrize(
    "args",
    [
        ["--configfile", "presets/tiny.yaml"],
        ["--configfile", "presets/tiny.yaml", "--config", "pack_size=1"],
        ["--configfile", "presets/tiny.yaml", "--config", "sweeps={lr: {job_per: configuration}}"],
        ["--configfile", "presets/demo.yaml"],
    ],
    ids=["tiny", "packs", "job-per-configuration", "demo"],
)
def test_snakemake_plans_the_jobs_the_plan_counts(tmp_path, args):
    workdir = copy_workflow(tmp_path, git=False)
    layers = {"tiny": "tiny.yaml", "demo": "demo.yaml"}
    preset = layers[Path(args[1]).stem]
    overrides = {}
    if "--config" in args:
        overrides = yaml.safe_load("{" + args[-1].replace("=", ": ", 1) + "}")
    proc = snakemake(workdir, "-n", "--forceall", *args)
    assert job_counts(proc.stdout + proc.stderr) == plan.job_counts(config(preset, **overrides))
