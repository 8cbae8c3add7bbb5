"""The pipeline end to end: Snakemake on the tiny preset in a temporary folder."""

import json
import subprocess

import pandas as pd
import pytest

from workflow_helpers import copy_workflow, snakemake

pytestmark = pytest.mark.slow

TABLES = ["table3_mae", "table4_rmse", "table5_r2"]
FIGURES = ["figure3_mae_normalised", "figure4_top_mae_average", "figure5_rmse_r2_average", "figure6_rmse_normalised",
           "figure7_r2_normalised"]


def test_every_table_and_figure_exists(tiny_run):
    _, results = tiny_run
    for table in TABLES:
        for ext in ("md", "csv", "tex"):
            assert (results / "tables" / f"{table}.{ext}").stat().st_size > 100
    for figure in FIGURES:
        png = (results / "figures" / f"{figure}.png").read_bytes()
        pdf = (results / "figures" / f"{figure}.pdf").read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 5000
        assert pdf.startswith(b"%PDF") and len(pdf) > 5000


def test_tables_have_every_configuration(tiny_run):
    _, results = tiny_run
    md = (results / "tables" / "table3_mae.md").read_text()
    rows = [line for line in md.splitlines() if line.startswith("| ") and "Method" not in line]
    assert len(rows) == 2 + 5 * 2  # least squares, Huber, and five methods at k = 3, 5
    for label in ("Least Squares", "Huber Loss", "End to End k = 5", "Trained Encoder Classification k = 3"):
        assert any(row.startswith(f"| {label}") for row in rows), label
    csv = pd.read_csv(results / "tables" / "table3_mae.csv")
    assert set(csv["code"]) == {"DB", "S2"} and (csv["seeds"] == 2).all()


def test_metrics_parquet_has_a_row_per_run(tiny_run):
    _, results = tiny_run
    frame = pd.read_parquet(results / "metrics.parquet")
    assert len(frame) == 2 * 12 * 2
    assert frame.groupby(["dataset", "configuration"]).size().eq(2).all()
    assert frame["test_mae"].notna().all()


def test_run_files_carry_provenance(tiny_run):
    workdir, results = tiny_run
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=workdir, capture_output=True, text=True).stdout.strip()
    record = json.loads((results / "runs" / "synthetic_2d" / "end_to_end-k5" / "seed1.json").read_text())
    assert record["seed"] == 1 and record["method"] == "end_to_end" and record["k"] == 5
    prov = record["provenance"]
    assert prov["git_commit"].startswith(commit)
    assert prov["versions"]["torch"] and prov["versions"]["targetcodec"]
    assert prov["hardware"]["device"] == "cpu" and prov["hardware"]["cpu_count"] >= 1
    assert prov["wall_seconds"] > 0 and prov["pack_seeds"] == [0, 1]
    assert 1 <= record["epochs_trained"] <= 4
    assert record["settings"]["architecture"]["width"] == 16
    assert set(record["metrics"]) >= {"test_mae", "test_rmse", "test_r2", "test_original_mae"}


def test_every_job_has_a_log_and_a_benchmark(tiny_run):
    _, results = tiny_run
    logs = list((results / "logs").rglob("*.log"))
    benchmarks = list((results / "benchmarks").rglob("*.tsv"))
    # 2 prepare, 4 pretrain_codec (trained_codec at k = 3, 5), 24 train, aggregate, tables, figures
    assert len(logs) == len(benchmarks) == 2 + 4 + 24 + 3
    train_log = (results / "logs" / "train" / "diabetes" / "least_squares" / "seeds0-1.log").read_text()
    assert "epoch 1/4" in train_log and "test MAE" in train_log


def test_second_run_has_nothing_to_do(tiny_run):
    workdir, _ = tiny_run
    proc = snakemake(workdir, "-n", "--configfile", "presets/tiny.yaml")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_one_job_per_seed_gives_the_same_runs(tiny_run, tmp_path):
    """pack_size 1 (the classic one-job-per-seed layout) reproduces the packed results."""
    workdir, results = tiny_run
    other = copy_workflow(tmp_path / "single")
    target = "results/tiny/runs/diabetes/end_to_end-k3/seed1.json"
    proc = snakemake(other, target, "--cores", "2", "--configfile", "presets/tiny.yaml", "--config", "pack_size=1")
    assert "train_seed1" in proc.stdout + proc.stderr
    packed = json.loads((results / "runs/diabetes/end_to_end-k3/seed1.json").read_text())
    single = json.loads((other / target).read_text())
    assert single["provenance"]["pack_size"] == 1 and packed["provenance"]["pack_size"] == 2
    assert single["metrics"] == pytest.approx(packed["metrics"], rel=1e-4, abs=1e-6)
