"""Extending the benchmark without touching its files: a method of one's own, registered in a module
the config names, is trained, tabled and plotted by the unchanged workflow."""

import json

import pandas as pd
import pytest

from workflow_helpers import copy_workflow, snakemake

pytestmark = pytest.mark.slow

TOY_MODULE = '''
"""A toy method: regression with the absolute loss (a median regressor)."""
from targetcodec.methods import Method, register


def absolute_loss(out, y, psi, codec_params, hp, settings):
    return (y - out).abs().sum(-1)


register(Method("absolute_loss", "Absolute Loss", "Absolute", uses_k=False, codec=None, objective=absolute_loss))
'''

TOY_CONFIG = """
run_datasets: [diabetes]
method_modules: [toy_methods]
methods: [least_squares, absolute_loss, soft_binning]
k_values: [3]
figures: {k: 3}
sweeps: {k: {enabled: false}}
"""


def test_a_registered_method_is_trained_tabled_and_plotted(tmp_path):
    workdir = copy_workflow(tmp_path / "toy", git=False)
    (workdir / "toy_methods.py").write_text(TOY_MODULE)
    (workdir / "toy.yaml").write_text(TOY_CONFIG)
    snakemake(workdir, "--cores", "2", "--configfile", "presets/tiny.yaml", "toy.yaml")
    results = workdir / "results" / "tiny"
    run = json.loads((results / "runs/diabetes/absolute_loss/seed0.json").read_text())
    assert run["method"] == "absolute_loss" and 0 < run["metrics"]["test_mae"] < 1
    assert (results / "sweeps/lr/diabetes/absolute_loss.parquet").exists()
    table = (results / "tables/table3_mae.md").read_text()
    assert "| Absolute Loss " in table and "Soft Binning Classification $\\lambda_\\sigma = 0.5$ k = 3" in table
    frame = pd.read_parquet(results / "metrics.parquet")
    assert set(frame["method"]) == {"least_squares", "absolute_loss", "soft_binning"}
    for figure in ("figure3_mae_normalised", "figure4_top_mae_average"):
        assert (results / f"figures/{figure}.png").stat().st_size > 5000


def test_an_unknown_method_is_refused_with_the_registered_names(tmp_path):
    workdir = copy_workflow(tmp_path / "unknown", git=False)
    proc = snakemake(
        workdir, "-n", "--configfile", "presets/tiny.yaml", "--config", "methods=[least_squares,absolute]", check=False
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "config key 'methods[1]': unknown method 'absolute'" in out and "end_to_end" in out
