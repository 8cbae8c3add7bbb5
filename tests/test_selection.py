"""Sweep selection and the paired test, on cases whose answers are known."""

import math

import numpy as np
import pandas as pd
import pytest

from targetcodec.report.significance import paired_test, significance_markers, smallest_p_value
from targetcodec.train.selection import select_best


def test_select_best_picks_lowest_mean_validation_mae():
    runs = pd.DataFrame(
        {
            "lr": [1e-4, 1e-4, 1e-3, 1e-3, 1e-2, 1e-2],
            "seed": [1000, 1001] * 3,
            # 1e-3 has the lowest mean (0.15) although 1e-2 has the single best run (0.05)
            "val_mae": [0.30, 0.32, 0.10, 0.20, 0.05, 0.40],
        }
    )
    chosen = select_best(runs, "lr")
    assert chosen["value"] == 1e-3
    assert chosen["mean_val_mae"][repr(1e-3)] == pytest.approx(0.15)
    assert chosen["seeds"] == [1000, 1001]


def test_a_diverged_run_disqualifies_its_value():
    runs = pd.DataFrame({"lr": [1e-3, 1e-3, 1e-1, 1e-1], "seed": [0, 1, 0, 1], "val_mae": [0.2, 0.2, 0.01, math.nan]})
    assert select_best(runs, "lr")["value"] == 1e-3


def test_wilcoxon_textbook_all_positive():
    # ten positive differences: W- = 0, exact two-sided p = 2 / 2^10
    a = np.arange(1, 11, dtype=float) + 100
    result = paired_test(a, np.full(10, 100.0))
    assert result["statistic"] == 0
    assert result["p_value"] == pytest.approx(2 / 1024)
    assert smallest_p_value(10) == pytest.approx(2 / 1024)


def test_wilcoxon_textbook_mixed_signs():
    # differences -1, 2, 3, -4, 5: ranks 1..5, W+ = 10, W- = 5, statistic min = 5.
    # Subsets of {1..5} with rank sum <= 5: 10 of 32, so the two-sided p = 2 * 10/32 = 0.625.
    result = paired_test(np.array([-1.0, 2, 3, -4, 5]), np.zeros(5))
    assert result["statistic"] == 5
    assert result["p_value"] == pytest.approx(0.625)


def test_markers_say_better_or_worse():
    seeds = list(range(8))
    rows = []
    for s in seeds:
        rows += [
            {
                "configuration": "least_squares",
                "method": "least_squares",
                "dataset": "d",
                "seed": s,
                "test_mae": 0.5 + 0.01 * s,
            },
            {
                "configuration": "end_to_end-k5",
                "method": "end_to_end",
                "dataset": "d",
                "seed": s,
                "test_mae": 0.4 + 0.01 * s,
            },
            {
                "configuration": "hard_binning-k5",
                "method": "hard_binning",
                "dataset": "d",
                "seed": s,
                "test_mae": 0.6 + 0.011 * s,
            },
            {
                "configuration": "huber",
                "method": "huber",
                "dataset": "d",
                "seed": s,
                "test_mae": 0.5 + 0.01 * s + (-1) ** s * 1e-3,
            },
        ]
    markers = significance_markers(pd.DataFrame(rows), "mae", 0.05, higher_is_better=False)
    assert markers == {("end_to_end-k5", "d"): " (+)", ("hard_binning-k5", "d"): " (-)"}
    # for R^2, higher is better: the same numbers flip the verdicts
    r2 = pd.DataFrame(rows).rename(columns={"test_mae": "test_r2"})
    assert significance_markers(r2, "r2", 0.05, higher_is_better=True)[("end_to_end-k5", "d")] == " (-)"


def test_a_selected_lambda_without_a_sweep_result():
    """A lambda set to "selected" errors where it must come from a sweep, and takes the paper's
    value (Appendix B) where the runs come before its sweep, or do not depend on it."""
    from reliability_helpers import workflow_config
    from targetcodec.train.settings import TrainingJob, job_params

    config = workflow_config(
        {"training": {"mlp": {"lr": 1e-3}}, "end_to_end": {"lambda_kl": "selected", "lambda_auto": "selected"}},
        {"sweeps": {"lambda_auto": {"enabled": True}}},
    )
    e2e = TrainingJob.from_params(job_params(config, "diabetes", "end_to_end-k5"))
    with pytest.raises(ValueError, match="config key 'end_to_end.lambda_kl' is 'selected'"):
        e2e.run_specs([0])
    [spec] = e2e.run_specs([0], unselected="paper", lambda_auto=0.5)
    assert (spec.lambda_kl, spec.lambda_auto, spec.lr) == (0.068, 0.5, 1e-3)
    [spec] = TrainingJob.from_params(job_params(config, "diabetes", "hard_binning-k5")).run_specs([0])
    assert (spec.lambda_kl, spec.lr) == (0.068, 1e-3)


def test_a_job_reads_only_what_its_method_reads():
    """The params of a job (its rerun trigger) hold its method's settings and no other method's."""
    from reliability_helpers import workflow_config
    from targetcodec.train.settings import TrainingJob, job_params

    config = workflow_config(
        {"huber_delta": 2.0, "end_to_end": {"lambda_kl": 0.5}},
        {"codec": {"soft_binning_lambda_sigma": 0.25, "grid": "midpoints", "weight_decay_mode": "l2"}},
    )
    huber = job_params(config, "diabetes", "huber")
    assert huber["method"] == {"huber_delta": 2.0} and "codec_seed" not in huber
    assert TrainingJob.from_params(huber).settings.huber_delta == 2.0
    soft = TrainingJob.from_params(job_params(config, "diabetes", "soft_binning-k5"))
    assert soft.job["method"] == {"codec.soft_binning_lambda_sigma": 0.25, "codec.grid": "midpoints"}
    assert soft.settings.soft_binning_lambda_sigma == 0.25 and soft.settings.grid == "midpoints"
    assert soft.configuration.display(soft.settings) == "Soft Binning Classification $\\lambda_\\sigma = 0.25$ k = 5"
    e2e = TrainingJob.from_params(job_params(config, "diabetes", "end_to_end-k5"))
    assert e2e.run_defaults["lambda_kl"] == 0.5 and e2e.training.codec_weight_decay_mode == "l2"
    assert "codec.hard_bins" not in e2e.job["method"]
    assert "codec" in job_params(config, "diabetes", "trained_codec-k5") and "codec" not in e2e.job


def test_aggregation_refuses_runs_not_trained_at_their_sweeps_choice(tmp_path):
    """What the aggregate rule checks: each reported run has the value its sweep selected."""
    import json

    from targetcodec.report.aggregate import check_selected

    runs = pd.DataFrame(
        {
            "dataset": "d",
            "configuration": ["least_squares"] * 2 + ["huber"],
            "seed": [0, 1, 0],
            "lr": [3e-3, 1e-3, 1e-3],
        }
    )
    selected = tmp_path / "least_squares.json"
    selected.write_text(json.dumps({"param": "lr", "value": 3e-3, "dataset": "d", "configuration": "least_squares"}))
    with pytest.raises(
        ValueError, match=f"runs/d/least_squares seeds 1 were not trained at the lr = 0.003 that {selected}"
    ):
        check_selected(runs, [selected])
    runs.loc[1, "lr"] = 3e-3
    check_selected(runs, [selected])  # every run at the choice: nothing to say
