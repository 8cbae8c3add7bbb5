"""Fault class failed_runs: a run that failed is recorded as failed and never reaches a table cell.

A run fails without a finite validation MAE, or with a best validation MAE no better than
predicting the training mean (targetcodec/train/failures.py). Real training jobs
(``train_configuration``, ``sweep_configuration``) on scikit-learn's diabetes data prepared by the
real prepare step, a learning rate far too high (1000) making runs blow up to large finite
values; then the real aggregation, Table 3 and Table 6 code, and one small
Snakemake run.
"""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reliability_helpers import (  # noqa: F401
    FAILING_ARGS,
    FAILING_TARGET,
    SHARED_UMASK,
    failing_run,
    prepared_diabetes,
    snakemake_with_umask,
    with_arrays,
    workflow_config,
)
from targetcodec.io import DamagedFile
from targetcodec.report.aggregate import failed_run_lines, load_runs
from targetcodec.report.outputs import OUTPUTS, ReportSettings
from targetcodec.report.tables import write_lambda_table
from targetcodec.train.failures import failure_of, mean_predictor_val_mae
from targetcodec.train.jobs import JobContext, sweep_configuration, train_configuration
from targetcodec.train.selection import NothingToSelect, select_best
from targetcodec.train.settings import Runtime, TrainingJob, job_params

pytestmark = pytest.mark.fault("failed_runs")  # counted by tests/fault_classes.py

GOOD_LR, BAD_LR = 1e-2, 1000.0


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    return prepared_diabetes(tmp_path_factory.mktemp("prepared"))


def train(folder, data, label, seeds, lr, lines=None):
    config = workflow_config({"training": {"mlp": {"lr": lr}}, "sweeps": {"lr": {"enabled": False}}})
    outputs = [str(folder / "runs" / "diabetes" / label / f"seed{s}.json") for s in seeds]
    job = TrainingJob.from_params(job_params(config, "diabetes", label))
    log = (lines if lines is not None else []).append
    train_configuration(JobContext.load(data, runtime=Runtime(workflow_dir=str(folder)), log=log), job, seeds, outputs)
    return outputs


def test_the_bound_is_the_validation_mae_of_the_training_mean():
    y_train = np.array([[0.0], [1.0], [0.5]])  # mean 0.5
    y_val = np.array([[0.0], [0.25], [1.0]])  # |0.5|, |0.25|, |0.5| -> 1.25 / 3
    bound = mean_predictor_val_mae(y_train, y_val)
    assert bound == pytest.approx(1.25 / 3)
    assert failure_of(0.2, bound) is None
    assert "no better than predicting the training mean" in failure_of(bound, bound)
    assert "no better" in failure_of(7751.0, bound)
    assert failure_of(math.nan, bound).startswith("diverged") and failure_of(math.inf, bound).startswith("diverged")


def test_finite_divergence_is_recorded_as_failed_and_left_out_of_table3(prepared, tmp_path):
    lines = []
    ok = train(tmp_path, prepared, "least_squares", [0], GOOD_LR)
    blown = train(tmp_path, prepared, "least_squares", [1], BAD_LR, lines)  # same cell, another pack (pack_size: 1)
    huber = train(tmp_path, prepared, "huber", [0, 1], BAD_LR)
    record = json.loads(open(blown[0]).read())
    assert record["failed"] and not record["diverged"]  # large but finite: once a number in Table 3
    assert record["metrics"]["val_mae"] >= record["mean_predictor_val_mae"]  # finite, and no better than the mean
    assert "no better than predicting the training mean" in record["failure"]
    assert record["mean_predictor_val_mae"] == pytest.approx(
        mean_predictor_val_mae(*(np.load(prepared)[k] for k in ("y_train", "y_val")))
    )
    assert not json.loads(open(ok[0]).read())["failed"]
    assert any("FAILED run seed 1 (lr 1000" in line for line in lines), lines  # the job log names it

    frame = load_runs(ok + blown + huber)
    assert list(frame["failed"]) == [False, True, True, True]
    assert frame.loc[frame["failed"], "test_mae"].isna().all()  # never averaged, in any table or figure
    assert (
        len(failed_run_lines(frame)) == 3
        and "diabetes / least_squares / seed 1: best validation MAE" in failed_run_lines(frame)[0]
    )

    settings = ReportSettings(
        datasets=["diabetes"],
        codes={"diabetes": "DB"},
        configurations=["least_squares", "huber"],
        labels={},
        k=5,
        alpha=0.05,
        reference="least_squares",
    )
    OUTPUTS["table3_mae"].make(frame, str(tmp_path / "table3_mae"), settings, print)
    md = (tmp_path / "table3_mae.md").read_text()
    cells = {
        line.split("|")[1].strip(): line.split("|")[2].strip()
        for line in md.splitlines()[2:]
        if line.startswith("| ") and "---" not in line
    }
    ok_mae = json.loads(open(ok[0]).read())["metrics"]["test_mae"]
    assert cells["Least Squares"] == f"{ok_mae:.3f} ± n/a (1/2)"  # one seed: the failed one is not in the mean
    assert cells["Huber Loss"] == "failed (0/2)"
    caption = md.splitlines()[0]
    assert "A cell marked (n/N) holds n of its N seeds: 3 run(s) failed" in caption
    assert "DB least_squares seed 1 (best validation MAE" in caption and "DB huber seed 0" in caption
    csv = pd.read_csv(tmp_path / "table3_mae.csv").set_index("configuration")
    assert (csv.loc["least_squares", ["seeds", "runs", "failed"]] == [1, 2, 1]).all()
    assert "(1/2)" in (tmp_path / "table3_mae.tex").read_text()


def test_a_nan_test_metric_of_a_run_that_did_not_fail_is_an_error(prepared, tmp_path):
    """A feature value beyond float32 in one test row (what preparation now refuses) makes every
    test metric NaN while validation is fine: the job stops and writes nothing."""
    with np.load(prepared) as d:
        X_test = d["X_test"].copy()
    X_test[3, 2] = 1e39
    data = with_arrays(prepared, tmp_path / "extreme.npz", X_test=X_test)
    with pytest.raises(FloatingPointError) as error:
        train(tmp_path, data, "least_squares", [0, 1], GOOD_LR)
    message = str(error.value)
    assert "dataset 'diabetes', configuration 'least_squares', seed 0: test_mae = nan" in message
    assert not (tmp_path / "runs").exists()


def test_a_run_file_with_a_nan_metric_that_is_not_marked_failed_is_refused(prepared, tmp_path):
    [path] = train(tmp_path, prepared, "least_squares", [0], GOOD_LR)
    record = json.loads(open(path).read())
    record["metrics"]["test_r2"] = float("nan")
    with open(path, "w") as f:
        json.dump(record, f)
    with pytest.raises(FloatingPointError, match=f"run file {path}: test_r2 = nan"):
        load_runs([path])


def sweep(folder, data, grid, lines):
    config = workflow_config()
    runs, selected = folder / "sweep.parquet", folder / "selected.json"
    job = TrainingJob.from_params(job_params(config, "diabetes", "least_squares"))
    context = JobContext.load(data, log=lines.append)
    result = sweep_configuration(context, job, "lr", grid, [1000, 1001], runs, selected)
    return result, runs, selected


def test_a_sweep_never_selects_a_value_whose_runs_failed(prepared, tmp_path):
    lines = []
    selection, runs, selected = sweep(tmp_path, prepared, [BAD_LR, GOOD_LR], lines)
    assert selection["value"] == GOOD_LR and selection["failed_runs"] == {repr(BAD_LR): 2, repr(GOOD_LR): 0}
    assert selection["mean_val_mae"][repr(BAD_LR)] is None  # nothing averaged for a value whose runs all failed
    table = pd.read_parquet(runs)
    assert table.loc[table["lr"] == BAD_LR, "failed"].all() and not table.loc[table["lr"] == GOOD_LR, "failed"].any()
    log = "\n".join(lines)
    assert log.count("FAILED run seed") == 2 and "2 of 4 runs failed" in log


def test_a_learning_rate_sweep_whose_every_value_failed_fails_its_configuration(prepared, tmp_path):
    """The sweep's table is written with every run failed, and the choice says why; the reported runs
    then train at the configured rate for the record, and are all failed with that reason."""
    lines = []
    selection, runs, selected = sweep(tmp_path, prepared, [300.0, BAD_LR], lines)
    message = selection["failed"]
    assert (
        "sweep of lr for dataset 'diabetes', configuration 'least_squares': all 4 runs of every value (300, 1000) failed"
        in message
    )
    assert "config key 'sweeps.lr.grid'" in message
    assert selection["value"] == workflow_config()["training"]["mlp"]["lr"]  # the configured rate, said to be failed
    assert pd.read_parquet(runs)["failed"].all() and json.loads(selected.read_text()) == selection
    assert any(line.startswith("FAILED: sweep of lr") for line in lines)

    config = workflow_config()
    job = TrainingJob.from_params(job_params(config, "diabetes", "least_squares"))
    outputs = [str(tmp_path / "runs" / f"seed{s}.json") for s in (0, 1)]
    train_configuration(JobContext.load(prepared, log=lines.append), job, [0, 1], outputs, selected=[selected])
    for path in outputs:
        record = json.loads(open(path).read())
        # at a good rate these runs would not fail: here they do, for the sweep's sake
        assert record["failed"] and record["failure"] == f"its learning-rate sweep failed: {message}"
    assert all(load_runs(outputs)["test_mae"].isna())


def test_a_lambda_sweep_whose_every_value_failed_stops_with_dataset_configuration_and_parameter(prepared, tmp_path):
    """Table 6 would print a value nobody chose: the job stops and writes nothing."""
    config = workflow_config({"training": {"mlp": {"lr": BAD_LR}}})
    job = TrainingJob.from_params(job_params(config, "diabetes", "end_to_end-k3"))
    runs, selected = tmp_path / "sweep.parquet", tmp_path / "selected.json"
    with pytest.raises(NothingToSelect) as error:
        sweep_configuration(JobContext.load(prepared), job, "lambda_kl", [0.068, 1.0], [1000, 1001], runs, selected)
    message = str(error.value)
    assert (
        "sweep of lambda_kl for dataset 'diabetes', configuration 'end_to_end-k3': all 4 runs of every value (0.068, 1) failed"
        in message
    )
    assert "config key 'sweeps.lambda_kl.grid'" in message
    assert not runs.exists() and not selected.exists()


def sweep_rows(values):
    """Sweep runs: {grid value: [validation MAE or None for a failed run, ...]}."""
    rows = []
    for value, maes in values.items():
        for seed, mae in enumerate(maes):
            rows.append(
                {
                    "dataset": "d",
                    "configuration": "end_to_end-k5",
                    "k": 5,
                    "lambda_kl": value,
                    "seed": 1000 + seed,
                    "val_mae": mae if mae is not None else 9e3,
                    "failed": mae is None,
                    "failure": "no better than predicting the training mean" if mae is None else "",
                }
            )
    return pd.DataFrame(rows).assign(param="lambda_kl")


def test_failed_runs_rank_a_value_last_and_are_never_averaged():
    # 0.1 has the best run but a failed one; 1.0 has no failure; 3.0 failed entirely (its stale
    # finite MAE would be the smallest mean if failures were averaged)
    chosen = select_best(
        sweep_rows({0.1: [0.05, None], 1.0: [0.30, 0.32], 3.0: [None, None]}).assign(
            val_mae=[0.05, 9e3, 0.30, 0.32, 0.01, 0.01]
        ),
        "lambda_kl",
    )
    assert chosen["value"] == 1.0
    assert chosen["mean_val_mae"] == {"0.1": 0.05, "1.0": pytest.approx(0.31), "3.0": None}
    # where every value has failures, the fewest failures win, never a value whose runs all failed
    assert select_best(sweep_rows({0.1: [0.2, None], 1.0: [None, None]}), "lambda_kl")["value"] == 0.1


def test_table6_cannot_print_a_value_where_every_run_failed(tmp_path):
    sweeps = sweep_rows({0.068: [None, None], 1.0: [None, None]})
    with pytest.raises(NothingToSelect, match="sweep of lambda_kl for dataset 'd', configuration 'end_to_end-k5'"):
        write_lambda_table(sweeps, str(tmp_path / "table6"), {"d": "D"})
    assert not list(tmp_path.iterdir())


def metrics_with_a_failed_run() -> pd.DataFrame:
    """Three datasets, least squares and soft binning at k = 5, two seeds; soft binning's seed 1
    failed on "b" (NaN metrics, as aggregation writes a failed run)."""
    rows = []
    for dataset, base in (("a", 1.0), ("b", 4.0), ("c", 3.0)):
        for method, k in (("least_squares", None), ("soft_binning", 5)):
            for seed in (0, 1):
                failed = (dataset, method, seed) == ("b", "soft_binning", 1)
                value = float("nan") if failed else base + seed / 10
                rows.append(
                    {
                        "dataset": dataset,
                        "method": method,
                        "k": k,
                        "configuration": method if k is None else f"{method}-k{k}",
                        "seed": seed,
                        "test_mae": value,
                        "test_rmse": value,
                        "test_r2": value,
                        "failed": failed,
                        "failure": "no better than predicting the training mean" if failed else "",
                    }
                )
    frame = pd.DataFrame(rows)
    frame["k"] = frame["k"].astype("Int64")
    return frame


def test_figures_4_top_and_5_average_every_seed_over_the_same_datasets(tmp_path):
    """A failed run would leave its dataset out of its own seed's mean only (pandas skips NaN): seed 1
    of soft binning over a and c, the others over a, b and c. The dataset is left out of every
    mean instead, and the figure says which and why."""
    from targetcodec.report.figures import averaged_over_datasets, complete_datasets, figure_averaged

    frame = metrics_with_a_failed_run()
    means = averaged_over_datasets(frame, "mae", 5).set_index(["Method", "seed"])["test_mae"]
    # over a (1 + seed / 10) and c (3 + seed / 10) only, for every method and seed (with b: 2.67 + seed / 10)
    assert means.to_dict() == pytest.approx(
        {(m, s): 2.0 + s / 10 for m in ("Least Squares", "Soft Binning") for s in (0, 1)}
    )
    assert complete_datasets(frame.assign(Method=frame["method"]), ["mae"]) == ["a", "c"]
    lines = []
    paths = figure_averaged(frame, ["rmse", "r2"], 5, str(tmp_path / "figure5"), "Figure 5", {"b": "B"}, lines.append)
    assert all(Path(p).stat().st_size > 0 for p in paths)
    assert lines == [
        "Left out of every mean, for every method and seed: B, where 1 run(s) shown failed (B soft_binning-k5 seed 1)."
    ]


@pytest.mark.slow
def test_the_workflow_tables_failed_runs_as_failed_and_a_failed_sweep_as_a_failed_configuration(failing_run):  # noqa: F811 (a fixture)
    """Snakemake on a small config: every reported run blows up (learning rate 1000). Table 3 is
    made, with every cell "failed (0/2)" and the aggregate log naming each run; then with the
    learning-rate sweep on a grid where everything fails, the workflow still ends: the sweep's choice
    says it failed, and the configurations' runs are failed for that reason."""
    workdir, results = failing_run
    md = (results / "tables" / "table3_mae.md").read_text()
    assert md.count("failed (0/2)") == 2 and "4 run(s) failed" in md
    log = (results / "logs" / "aggregate.log").read_text()
    assert "4 failed" in log and log.count("FAILED diabetes / ") == 4
    assert all(json.loads(p.read_text())["failed"] for p in (results / "runs").rglob("seed*.json"))

    snakemake_with_umask(
        SHARED_UMASK,
        workdir,
        FAILING_TARGET,
        *FAILING_ARGS,
        "--config",
        "sweeps={lr: {enabled: true, grid: [300.0, 1000.0], seeds: 2}}",
    )
    sweep_log = (results / "logs" / "sweep_and_train" / "diabetes" / "no_k.log").read_text()
    assert "sweep of lr for dataset 'diabetes', configuration 'least_squares': all 4 runs of every value" in sweep_log
    selected = json.loads((results / "selected" / "lr" / "diabetes" / "least_squares.json").read_text())
    assert "all 4 runs of every value (300, 1000) failed" in selected["failed"]
    run = json.loads((results / "runs" / "diabetes" / "least_squares" / "seed0.json").read_text())
    assert run["failure"].startswith("its learning-rate sweep failed: sweep of lr")
    assert run["failure"].endswith(
        "; the run itself: " + failure_of(run["metrics"]["val_mae"], run["mean_predictor_val_mae"])
    )
    assert (results / "tables" / "table3_mae.md").read_text().count("failed (0/2)") == 2


def test_a_damaged_selected_file_names_itself(tmp_path):
    from targetcodec.train.jobs import read_selected

    path = tmp_path / "selected.json"
    path.write_text('{"param": "lr", "val')
    with pytest.raises(DamagedFile, match=f"{path} is damaged"):
        read_selected([path])
