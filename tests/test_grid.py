"""config.yaml plans the paper's grid."""

import re

import pytest

from workflow_helpers import copy_workflow, snakemake

pytestmark = pytest.mark.slow


def test_dry_run_plans_the_papers_grid(tmp_path):
    workdir = copy_workflow(tmp_path, git=False)
    proc = snakemake(workdir, "-n", "--config", "sweeps={k: {enabled: false}}")
    runs = set(re.findall(r"results/runs/(\w+)/([a-z_]+(?:-k\d+)?)/seed(\d+)\.json", proc.stdout))
    datasets = {d for d, _, _ in runs}
    configurations = {c for _, c, _ in runs}
    seeds = {int(s) for _, _, s in runs}
    assert datasets == {
        "wine_quality",
        "ailerons",
        "bike_sharing",
        "superconductivity",
        "elevators",
        "cpu_act",
        "diamonds",
        "retinamnist",
    }
    assert len(configurations) == 17 and seeds == set(range(10))
    assert len(runs) == 8 * 17 * 10
    # and one training job per (dataset, k): each configuration's learning-rate sweep and then its ten
    # seeds as one pack, one configuration after the other; the lambda_KL sweeps of end to end (k = 5,
    # 15, 25) in jobs of their own
    for group in ("no_k", "k5", "k15", "k25"):
        assert re.search(rf"^sweep_and_train_{group}\s+8$", proc.stdout, re.MULTILINE), group
    assert re.search(r"^sweep_lambda_kl\s+24$", proc.stdout, re.MULTILINE)
    assert not re.search(r"^train\s", proc.stdout, re.MULTILINE)
