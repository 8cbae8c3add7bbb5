"""The pipeline end to end: Snakemake on the tiny preset in a temporary folder."""

import json
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from workflow_helpers import copy_workflow, job_counts, snakemake

pytestmark = pytest.mark.slow

TABLES = ["table3_mae", "table4_rmse", "table5_r2", "table6_lambda_kl"]
ENCODER_FIGURES = ["figure2_encoders", "figure8_fixed_grid_encoder", "figure9_learnt_encoder"]
FIGURES = [
    "figure2_encoders",
    "figure3_mae_normalised",
    "figure4_top_mae_average",
    "figure4_centre_k",
    "figure4_bottom_lambda_kl",
    "figure5_rmse_r2_average",
    "figure6_rmse_normalised",
    "figure7_r2_normalised",
    "figure8_fixed_grid_encoder",
    "figure9_learnt_encoder",
]
CONFIGURATIONS = 2 + 5 * 2  # least squares, Huber, and five methods at k = 3, 5
GROUPS = ["no_k", "k3", "k5", "k7"]  # the training jobs of a dataset (sweeps.lr.job_per: k)
K_SWEEP_EXTRA = 1  # soft binning at k = 7


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


@pytest.mark.parametrize("table", ["table3_mae", "table4_rmse", "table5_r2"])
def test_tables_have_every_method_and_k(tiny_run, table):
    _, results = tiny_run
    md = (results / "tables" / f"{table}.md").read_text()
    rows = [line for line in md.splitlines() if line.startswith("| ") and "Method" not in line]
    assert len(rows) == CONFIGURATIONS  # the k sweep's k = 7 is not a row of Tables 3-5
    labels = [row.split("|")[1].strip() for row in rows]
    assert labels.count("Least Squares") == labels.count("Huber Loss") == 1
    for method in (
        "Least Squares w. Softmax",
        "Hard Binning Classification",
        "Soft Binning Classification",
        "Trained Encoder Classification",
        "End to End",
    ):
        for k in (3, 5):
            assert sum(label.startswith(method) and label.endswith(f"k = {k}") for label in labels) == 1, (method, k)
    csv = pd.read_csv(results / "tables" / f"{table}.csv")
    assert set(csv["code"]) == {"DB", "S2"} and (csv["seeds"] == 2).all()
    assert "Wilcoxon" in md and "With 2 seeds no p-value can fall below 0.5" in md


def test_table6_has_a_lambda_per_dataset_and_k(tiny_run):
    _, results = tiny_run
    best = pd.read_csv(results / "tables" / "table6_lambda_kl.csv")
    assert len(best) == 2 * 2 and set(best["k"]) == {3, 5}
    assert set(best["lambda_kl"]) <= {0.068, 1.0}
    for row in best.itertuples():
        selected = json.loads(
            (results / "selected" / "lambda_kl" / row.dataset / f"end_to_end-k{row.k}.json").read_text()
        )
        assert selected["value"] == row.lambda_kl


def test_a_run_without_a_dataset_of_the_paper_compares_nothing(tiny_run):
    """The tiny run's datasets (DB, S2) are not in the paper: one line, no rows; the linear-regression
    reference has a row per dataset all the same."""
    _, results = tiny_run
    md = (results / "tables" / "paper_comparison.md").read_text()
    assert len(md.splitlines()) == 1 and "diabetes (DB), synthetic_2d (S2)" in md and "nothing to compare" in md
    assert pd.read_csv(results / "tables" / "paper_comparison.csv").empty
    linear = pd.read_csv(results / "reference" / "linear_regression.csv")
    assert list(linear["code"]) == ["DB", "S2"] and linear["test_mae"].between(0, 1).all()


def test_a_dataset_of_the_paper_is_compared_with_it(tmp_path):
    """A local file declared as cpu_act (code CA) flows through the comparison: a row per configuration
    and metric with the paper's numbers, the linear-regression reference fitted on its prepared split,
    and Table 6 against the lambda_KL sweep."""
    workdir = copy_workflow(tmp_path / "paper", git=False)
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(300, 4))
    y = X @ [1.0, -2.0, 0.5, 0.0] + np.sin(6 * X[:, 0]) + 0.1 * rng.standard_normal(300)
    pd.DataFrame(X, columns=list("abcd")).assign(y=y).to_csv(workdir / "cpu.csv", index=False)
    (workdir / "paper.yaml").write_text(
        "run_datasets: [cpu]\n"
        "datasets:\n  cpu: {code: CA, source: file, path: cpu.csv, target: y}\n"
        "methods: [least_squares, end_to_end]\nk_values: [5]\n"
        "sweeps: {k: {enabled: false}, lambda_kl: {figure_dataset: cpu}}\n"
    )
    target = "results/tiny/tables/paper_comparison.csv"
    snakemake(workdir, target, "--cores", "2", "--configfile", "presets/tiny.yaml", "paper.yaml")
    results = workdir / "results" / "tiny"
    rows = pd.read_csv(results / "tables" / "paper_comparison.csv", keep_default_na=False, na_values=[""])
    assert set(rows["code"]) == {"CA"}
    metrics = rows[rows["metric"] != "lambda_kl"].set_index(["configuration", "metric"])
    assert sorted(metrics.index.get_level_values(0).unique()) == ["end_to_end-k5", "least_squares", "linear_regression"]
    assert metrics.loc[("least_squares", "mae"), "paper_mean"] == 0.059
    assert metrics.loc[("end_to_end-k5", "r2"), "paper_mean"] == 0.977
    assert metrics.loc[("linear_regression", "rmse"), "paper_configuration"] == "least_squares"
    ours = pd.read_parquet(results / "metrics.parquet").groupby("configuration")["test_mae"].mean()
    assert metrics.loc[("end_to_end-k5", "mae"), "ours_mean"] == pytest.approx(ours["end_to_end-k5"])
    lam = rows[rows["metric"] == "lambda_kl"].iloc[0]
    table6 = pd.read_csv(results / "tables" / "table6_lambda_kl.csv").iloc[0]
    assert (lam["configuration"], lam["paper_mean"], lam["ours_mean"]) == ("end_to_end-k5", 0.068, table6["lambda_kl"])
    # the reference: ordinary least squares with an intercept on the prepared training split
    data = np.load(results / "prepared" / "cpu.npz")
    design = np.column_stack([data["X_train"], np.ones(len(data["X_train"]))])
    coefficients = np.linalg.lstsq(design, data["y_train"], rcond=None)[0]
    predicted = np.column_stack([data["X_test"], np.ones(len(data["X_test"]))]) @ coefficients
    linear = pd.read_csv(results / "reference" / "linear_regression.csv").iloc[0]
    assert linear["test_mae"] == pytest.approx(np.abs(data["y_test"] - predicted).mean(), rel=1e-6)
    assert metrics.loc[("linear_regression", "mae"), "ours_mean"] == pytest.approx(linear["test_mae"])
    md = (results / "tables" / "paper_comparison.md").read_text()
    assert "## CA (cpu)" in md and "| Linear regression (reference) | 0.059 ± 8.28e-04 |" in md
    assert "| k = 5 | 0.068 / " in md


def test_metrics_parquet_has_a_row_per_run(tiny_run):
    _, results = tiny_run
    frame = pd.read_parquet(results / "metrics.parquet")
    assert len(frame) == 2 * (CONFIGURATIONS + K_SWEEP_EXTRA) * 2
    assert frame.groupby(["dataset", "configuration"]).size().eq(2).all()
    assert frame["test_mae"].notna().all()
    assert set(frame.loc[frame["method"] == "soft_binning", "k"]) == {3, 5, 7}


def test_reported_runs_use_the_selected_learning_rate(tiny_run):
    _, results = tiny_run
    frame = pd.read_parquet(results / "metrics.parquet")
    chosen = set()
    for row in frame.itertuples():
        selected = json.loads((results / "selected" / "lr" / row.dataset / f"{row.configuration}.json").read_text())
        assert row.lr == selected["value"]
        chosen.add(selected["value"])
        sweep = pd.read_parquet(results / "sweeps" / "lr" / row.dataset / f"{row.configuration}.parquet")
        means = sweep.groupby("lr")["val_mae"].mean()
        assert means.idxmin() == selected["value"]
        assert set(sweep["seed"]) == {1000, 1001} and set(sweep["lr"]) == {1e-2, 3e-2}
    # the end-to-end lambda sweep ran at the selected learning rate
    lam = pd.read_parquet(results / "sweeps" / "lambda_kl" / "diabetes" / "end_to_end-k3.parquet")
    lr = json.loads((results / "selected" / "lr" / "diabetes" / "end_to_end-k3.json").read_text())["value"]
    assert (lam["lr"] == lr).all() and set(lam["lambda_kl"]) == {0.068, 1.0}


def test_report_contains_every_table_and_figure(tiny_run):
    workdir, _ = tiny_run
    snakemake(workdir, "--configfile", "presets/tiny.yaml", "--report", "report.html")
    html = (workdir / "report.html").read_text()
    for name in FIGURES + TABLES + ["paper_comparison", "linear_regression"]:
        assert f'"{name}' in html or f"{name}." in html, name
    assert "Figure 4 (bottom): impact of" in html and "over 2 seeds" in html
    assert "This report reproduces the benchmark" in html  # workflow/report/workflow.rst, the introduction


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
    # per dataset: prepare, 4 sweep_and_train (for each of no k, k = 3, 5, 7: every configuration's
    # learning-rate sweep and reported runs, after the trained encoder's codec at k = 3, 5), 2 lambda
    # sweeps; then aggregate, aggregate_sweeps, one job per table and figure, and the comparison with
    # the paper (linear_regression, paper_comparison)
    assert len(logs) == len(benchmarks) == 2 * (1 + 4 + 2) + 2 + len(TABLES) + len(FIGURES) + 2
    codec_log = (results / "logs" / "sweep_and_train" / "diabetes" / "k5.log").read_text()
    assert "pretrain step 1/50" in codec_log and "codec k = 5: auto-encoding error" in codec_log
    assert (results / "codecs" / "diabetes" / "k5.npz").exists() and (
        results / "codecs" / "diabetes" / "k5.json"
    ).exists()
    train_log = (results / "logs" / "sweep_and_train" / "diabetes" / "no_k.log").read_text()
    assert "configuration 1/2: least_squares" in train_log and "configuration 2/2: huber" in train_log
    assert "sweep of lr" in train_log and "epoch 1/4" in train_log and "test MAE" in train_log


def test_second_run_has_nothing_to_do(tiny_run):
    workdir, _ = tiny_run
    proc = snakemake(workdir, "-n", "--configfile", "presets/tiny.yaml")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_changing_the_sweep_grid_reruns_sweeps_runs_and_reports_only(tiny_run):
    workdir, _ = tiny_run
    proc = snakemake(
        workdir, "-n", "--configfile", "presets/tiny.yaml", "--config", "sweeps={lr: {grid: [0.001, 0.01]}}"
    )
    jobs = job_counts(proc.stdout + proc.stderr)
    for group in GROUPS:  # every learning-rate sweep with its reported runs
        assert jobs[f"sweep_and_train_{group}"] == 2, group
    assert jobs["sweep_lambda_kl"] == 2 * 2  # and the lambda sweeps that use its choice
    assert "train" not in jobs
    for rule in ["aggregate", "aggregate_sweeps"] + TABLES + [f for f in FIGURES if f not in ENCODER_FIGURES]:
        assert jobs[rule] == 1, rule
    for rule in ["prepare", "pretrain_codec"] + ENCODER_FIGURES:  # (the codecs: in sweep_and_train_k3, _k5)
        assert rule not in jobs, rule


def test_remote_jobs_plan_only_themselves(tiny_run):
    """On a cluster every job runs as a Snakemake of its own, allowed only its rule and forced
    (`--mode remote`, as the executor plugins start it). On a finished run, each rule's job plans
    itself and nothing else: a rule that could also make one of its inputs (a sweep of the learning
    rate a sweep_and_train job selected) would train that again, racing with the jobs that read it."""
    workdir, _ = tiny_run
    plan = snakemake(workdir, "-n", "--forceall", "--cores", "2", "--configfile", "presets/tiny.yaml").stdout
    targets = {}  # rule: its first job's "rule:wildcard=value,..." (local rules and all run in Snakemake itself)
    for name, block in re.findall(r"^rule (\w+):\n((?:    .*\n)*)", plan, flags=re.MULTILINE):
        wildcards = re.search(r"^    wildcards: (.*)$", block, re.MULTILINE)
        targets.setdefault(name, f"{name}:{wildcards[1].replace(', ', ',') if wildcards else ''}")
    targets.pop("all")
    assert {"prepare", "sweep_and_train_k3", "sweep_lambda_kl", "aggregate"} <= set(targets), targets

    def remote_plan(rule):
        return snakemake(
            workdir, "-n", "--configfile", "presets/tiny.yaml", "--target-jobs", targets[rule], "--allowed-rules",
            rule, "--force", "--cores", "2", "--nolock", "--ignore-incomplete", "--max-inventory-time", "0",
            "--mode", "remote",
        )  # fmt: skip

    with ThreadPoolExecutor(2) as pool:  # dry runs, read-only: two at a time
        for rule, proc in zip(targets, pool.map(remote_plan, targets)):
            assert job_counts(proc.stdout + proc.stderr) == {rule: 1}, (targets[rule], proc.stdout[-3000:])


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


@pytest.mark.parametrize(
    "setting, jobs",
    [
        ("sweeps={lr: {one_job: false}}", {"prepare": 1, "sweep_lr": 1, "train": 1}),
        ("sweeps={lr: {job_per: configuration}}", {"prepare": 1, "sweep_and_train": 1}),
    ],
)
def test_a_sweep_and_its_runs_in_one_job_give_what_two_jobs_give(tiny_run, tmp_path, setting, jobs):
    """sweeps.lr.one_job: false (a sweep job, then a training job) and sweeps.lr.job_per: configuration
    (a job for the configuration alone) write the same sweep, selection and run files, number for
    number, as the tiny run's job of every configuration at k = 3 (sweep_and_train_k3)."""
    _, results = tiny_run
    other = copy_workflow(tmp_path / "two_jobs")
    target = "results/tiny/runs/synthetic_2d/soft_binning-k3/seed1.json"
    proc = snakemake(other, target, "--cores", "2", "--configfile", "presets/tiny.yaml", "--config", setting)
    assert job_counts(proc.stdout + proc.stderr) == jobs
    two = other / "results" / "tiny"
    for rel in ["sweeps/lr/synthetic_2d/soft_binning-k3.parquet"]:
        assert_frame_equal(
            pd.read_parquet(two / rel).drop(columns="wall_seconds"),
            pd.read_parquet(results / rel).drop(columns="wall_seconds"),
        )
    rel = "selected/lr/synthetic_2d/soft_binning-k3.json"
    assert json.loads((two / rel).read_text()) == json.loads((results / rel).read_text())
    for seed in (0, 1):
        rel = f"runs/synthetic_2d/soft_binning-k3/seed{seed}.json"
        one_job, two_jobs = json.loads((results / rel).read_text()), json.loads((two / rel).read_text())
        assert one_job["metrics"] == two_jobs["metrics"] and one_job["val_mae_history"] == two_jobs["val_mae_history"]
        assert one_job["hyperparameters"] == two_jobs["hyperparameters"]


def test_adding_a_dataset_runs_only_its_jobs(tiny_run):
    """A new config entry (a local file and an OpenML id) on a finished run: the dry run lists the
    new datasets' jobs, then aggregation, tables and figures, and nothing of the old datasets."""
    workdir, _ = tiny_run
    pd.DataFrame({"a": range(100), "b": [i % 17 for i in range(100)], "y": [i * 0.5 for i in range(100)]}).to_csv(
        workdir / "mine.csv", index=False
    )
    (workdir / "added.yaml").write_text(
        "data_cache: cache\n"
        "run_datasets: [diabetes, synthetic_2d, mine, ailerons_copy]\n"
        "datasets:\n"
        "  mine: {code: MI, source: file, path: mine.csv, target: y}\n"
        "  ailerons_copy: {code: AC, source: openml, id: 44137, target: goal}\n"
    )
    proc = snakemake(workdir, "-n", "--configfile", "presets/tiny.yaml", "added.yaml")
    out = proc.stdout + proc.stderr
    counts = job_counts(out)
    per_dataset = {
        "prepare": 1,
        **{f"sweep_and_train_{group}": 1 for group in GROUPS},  # with the codecs at k = 3, 5
        "sweep_lambda_kl": 2,
    }  # 13 configurations in 4 jobs, 2 lambda sweeps
    reports = ["aggregate", "aggregate_sweeps", "all", "linear_regression", "paper_comparison"] + TABLES
    reports += [f for f in FIGURES if f not in ENCODER_FIGURES]
    assert counts == {
        "download_dataset": 1,
        **{rule: 2 * n for rule, n in per_dataset.items()},
        **dict.fromkeys(reports, 1),
    }, counts
    datasets = {line.split("dataset=")[1].split(",")[0] for line in out.splitlines() if "dataset=" in line}
    assert datasets == {"mine", "ailerons_copy"}
    assert "output: cache/ailerons_copy.parquet" in out  # only the network dataset is downloaded


def test_selected_lambda_is_swept_before_the_reported_runs(tmp_path):
    """end_to_end.lambda_kl: selected: the learning-rate sweep runs at the paper's lambda_KL, the
    lambda_KL sweep at the selected learning rate, and the reported runs use both choices."""
    workdir = copy_workflow(tmp_path / "selected", git=False)
    (workdir / "selected.yaml").write_text(
        "run_datasets: [synthetic_2d]\nmethods: [least_squares, end_to_end]\nk_values: [3]\nend_to_end: {lambda_kl: selected}\n"
        "sweeps: {k: {enabled: false}}\nfigures: {k: 3}\n"
    )
    snakemake(workdir, "--cores", "2", "--configfile", "presets/tiny.yaml", "selected.yaml")
    results = workdir / "results" / "tiny"
    lr_sweep = pd.read_parquet(results / "sweeps/lr/synthetic_2d/end_to_end-k3.parquet")
    assert (lr_sweep["lambda_kl"] == 0.068).all()
    chosen_lr = json.loads((results / "selected/lr/synthetic_2d/end_to_end-k3.json").read_text())["value"]
    chosen_kl = json.loads((results / "selected/lambda_kl/synthetic_2d/end_to_end-k3.json").read_text())["value"]
    kl_sweep = pd.read_parquet(results / "sweeps/lambda_kl/synthetic_2d/end_to_end-k3.parquet")
    assert (kl_sweep["lr"] == chosen_lr).all()
    run = json.loads((results / "runs/synthetic_2d/end_to_end-k3/seed0.json").read_text())
    assert run["hyperparameters"]["lr"] == chosen_lr and run["hyperparameters"]["lambda_kl"] == chosen_kl


def test_the_tiny_metrics_are_the_recorded_ones(tiny_run):
    """The numbers do not move unless a change means them to (tests/golden/update.py records them).
    Equal to float32 round-off: other CPUs may order sums differently."""
    from golden.update import GOLDEN, KEYS, table

    _, results = tiny_run
    got, want = table(results / "metrics.parquet"), pd.read_csv(GOLDEN)
    assert got[KEYS].astype(str).equals(want[KEYS].astype(str))
    for column in want.columns.drop(KEYS):
        assert got[column].to_numpy() == pytest.approx(want[column].to_numpy(), rel=1e-4, abs=1e-6), column


def test_jobs_start_in_priority_order_data_first_longest_training_next_reports_last(tmp_path):
    """Where ready jobs outnumber the cores: the data first, then the training jobs with the most
    configurations, the figures made from nothing with the training, the reports last (rule priorities)."""
    workdir = copy_workflow(tmp_path / "order", git=False)
    out = snakemake(workdir, "-n", "--cores", "2", "--configfile", "presets/tiny.yaml").stdout
    priorities = {}
    for block in re.split(r"^(?:local)?rule ", out, flags=re.MULTILINE)[1:]:  # a job: "rule <name>:", its lines
        name, lines = block.split(":", 1)[0], block.splitlines()[1:]
        lines = lines[: next((i for i, line in enumerate(lines) if not line.startswith("    ")), len(lines))]
        values = [int(line.split(":")[1]) for line in lines if line.strip().startswith("priority:")]
        priorities.setdefault(name, set()).add(values[0] if values else 0)
    assert priorities["prepare"] == {100}
    # k = 3 and 5: five configurations each; no k: least squares and Huber; k = 7: the k sweep's soft binning
    assert priorities["sweep_and_train_k5"] == priorities["sweep_and_train_k3"] == {5}
    assert priorities["sweep_and_train_no_k"] == {2}
    assert priorities["sweep_and_train_k7"] == {1}
    assert priorities["sweep_lambda_kl"] == {1}  # the lambda_KL sweeps
    assert all(priorities[f] == {1} for f in ENCODER_FIGURES)
    assert priorities["table3_mae"] == priorities["figure3_mae_normalised"] == priorities["aggregate"] == {0}
