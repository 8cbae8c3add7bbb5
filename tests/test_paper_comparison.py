"""The comparison with the paper (targetcodec/report/paper.py): its transcribed Tables 3-6, the
comparison on known differences, and the linear-regression reference against a hand computation."""

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from targetcodec.data.split import SplitData
from targetcodec.io import DamagedFile
from targetcodec.report.linear_regression import (
    linear_regression_metrics,
    linear_regression_table,
    read_linear_regression,
)
from targetcodec.report.paper import (
    COLUMNS,
    LINEAR_REGRESSION_LABEL,
    ROUNDING_SIGMA,
    compare,
    compare_lambda_kl,
    load_paper_numbers,
    write_paper_comparison,
)

REPO = Path(__file__).resolve().parents[1]
PAPER_TEXT = REPO.parent / "shared" / "paper" / "beyond-binning.txt"
CODES = ["WN", "AE", "BS", "SC", "EL", "CA", "DM", "RM"]  # the paper's column order
# The rows of Tables 3-5 in the paper's order
ROWS = ["least_squares", "huber"] + [
    f"{method}-k{k}"
    for method in ("softmax_least_squares", "hard_binning", "soft_binning", "trained_codec", "end_to_end")
    for k in (5, 15, 25)
]
CELL = re.compile(r"\$(-?\d\.\d{3}) \\pm (\d\.\d{2})e\^\{(-\d+)\}\$")


def cell_of(text: str) -> tuple[float, float]:
    """A cell as the paper's text prints it: "$0.089 \\pm 2.54e^{-5}$" -> (0.089, 2.54e-5)."""
    found = CELL.fullmatch(text.strip())
    return float(found[1]), float(f"{found[2]}e{found[3]}")


@pytest.fixture(scope="module")
def paper():
    return load_paper_numbers()


# Cells quoted from the paper's text: (metric, code, configuration, as printed).
QUOTED = [
    ("mae", "AE", "softmax_least_squares-k5", r"$0.089 \pm 2.54e^{-5}$"),
    ("mae", "EL", "least_squares", r"$0.029 \pm 1.34e^{-4}$"),
    ("mae", "RM", "softmax_least_squares-k25", r"$0.291 \pm 8.98e^{-4}$"),
    ("mae", "BS", "end_to_end-k25", r"$0.074 \pm 3.13e^{-4}$"),
    ("rmse", "RM", "softmax_least_squares-k25", r"$0.331 \pm 1.21e^{-3}$"),  # printed as a second "k = 15"
    ("rmse", "CA", "soft_binning-k5", r"$0.025 \pm 1.09e^{-4}$"),  # printed "\lambda_p = 0.5"
    ("rmse", "WN", "end_to_end-k5", r"$0.125 \pm 1.20e^{-3}$"),
    ("r2", "RM", "softmax_least_squares-k25", r"$-0.020 \pm 7.49e^{-3}$"),
    ("r2", "DM", "huber", r"$0.935 \pm 1.33e^{-4}$"),
    ("r2", "EL", "softmax_least_squares-k5", r"$0.780 \pm 2.77e^{-1}$"),
    ("r2", "WN", "end_to_end-k25", r"$0.321 \pm 4.96e^{-3}$"),
]


@pytest.mark.parametrize("metric, code, configuration, printed", QUOTED)
def test_cells_of_tables_3_to_5_as_the_paper_prints_them(paper, metric, code, configuration, printed):
    row = paper[(paper["metric"] == metric) & (paper["code"] == code) & (paper["configuration"] == configuration)]
    assert len(row) == 1
    assert (row["mean"].iloc[0], row["pm"].iloc[0]) == pytest.approx(cell_of(printed), rel=1e-12)


def test_table_6_as_the_paper_prints_it(paper):
    lam = paper[paper["metric"] == "lambda_kl"].set_index(["code", "k"])["mean"]
    assert len(lam) == 8 * 3
    assert lam[("RM", 15)] == 3.163 and lam[("WN", 25)] == 0.316 and lam[("SC", 15)] == 0.147
    assert lam[("AE", 25)] == lam[("EL", 25)] == lam[("RM", 5)] == 0.147
    assert (
        lam.drop([("RM", 15), ("WN", 25), ("SC", 15), ("AE", 25), ("EL", 25), ("RM", 5), ("RM", 25)]) == 0.068
    ).all()


def test_every_table_has_every_dataset_and_configuration(paper):
    for number, metric in ((3, "mae"), (4, "rmse"), (5, "r2")):
        table = paper[paper["metric"] == metric]
        assert (table["table"] == number).all()
        assert sorted(zip(table["code"], table["configuration"])) == sorted((c, r) for c in CODES for r in ROWS)
    assert paper.loc[paper["metric"] == "lambda_kl", "pm"].isna().all()


def test_every_cell_matches_the_paper_text(paper):
    """Every cell against the paper's text, read by row position (the labels have misprints)."""
    if not PAPER_TEXT.is_file():
        pytest.skip(f"the paper's text {PAPER_TEXT} is not here")
    lines = PAPER_TEXT.read_text().splitlines()
    checked = 0
    for number, metric in ((3, "mae"), (4, "rmse"), (5, "r2")):
        start = next(i for i, line in enumerate(lines) if line.startswith(f"Table {number}:"))
        assert lines[start + 2].split("\t")[1:] == CODES
        cells = paper[paper["metric"] == metric].set_index(["code", "configuration"])
        for configuration, line in zip(ROWS, lines[start + 3 : start + 3 + len(ROWS)]):
            for code, text in zip(CODES, line.split("\t")[1:]):
                assert (cells.loc[(code, configuration), "mean"], cells.loc[(code, configuration), "pm"]) == (
                    pytest.approx(cell_of(text), rel=1e-12)
                ), (metric, code, configuration)
                checked += 1
    start = next(i for i, line in enumerate(lines) if line.startswith("Table 6:"))
    lam = paper[paper["metric"] == "lambda_kl"].set_index(["code", "k"])["mean"]
    for k, line in zip((5, 15, 25), lines[start + 3 : start + 6]):
        assert line.startswith(f"$k = {k}$")
        for code, text in zip(CODES, line.split("\t")[1:]):
            assert lam[(code, k)] == float(text), (code, k)
            checked += 1
    assert checked == 3 * 17 * 8 + 3 * 8


def test_a_malformed_paper_file_is_named(tmp_path):
    bad = tmp_path / "paper.csv"
    bad.write_text("table,metric,code,method,k,mean\n3,mae,CA,huber,,0.059\n")
    with pytest.raises(ValueError, match=f"{bad}: no column pm"):
        load_paper_numbers(bad)
    bad.write_text("table,metric,code,method,k,mean,pm\n3,mae,CA,huber,,0.O59,1e-4\n")
    with pytest.raises(ValueError, match=f"{bad}: column 'mean' holds '0.O59', not a number \\(mae of huber on CA\\)"):
        load_paper_numbers(bad)


def runs(dataset, configuration, values, method=None, k=None):
    return pd.DataFrame(
        {
            "dataset": dataset,
            "configuration": configuration,
            "method": method or configuration.split("-k")[0],
            "k": k,
            "seed": range(len(values)),
            "test_mae": values,
            "test_rmse": np.asarray(values) * 1.5,
            "test_r2": 1 - np.asarray(values) * 10,
            "failed": False,
        }
    )


@pytest.fixture
def known():
    """cpu_act (CA, in the paper) and a dataset of one's own (MI): least squares at the paper's 0.059
    within noise; end to end at k = 25 0.01 better than it on every one of 10 seeds (paper: 0.018);
    Huber tied with least squares."""
    rng = np.random.default_rng(0)
    ls = 0.059 + 0.0002 * rng.standard_normal(10)
    metrics = pd.concat(
        [
            runs("cpu_act", "least_squares", ls),
            runs("cpu_act", "end_to_end-k25", ls - 0.01, k=25),
            runs("cpu_act", "huber", ls + 0.00001 * rng.standard_normal(10)),
            runs("mine", "least_squares", ls),
        ],
        ignore_index=True,
    )
    linear = pd.DataFrame({"dataset": ["cpu_act", "mine"], "code": ["CA", "MI"], "test_mae": [0.064, 0.05]})
    linear["test_rmse"], linear["test_r2"] = linear["test_mae"] * 1.5, 1 - linear["test_mae"] * 10
    codes = {"cpu_act": "CA", "mine": "MI"}
    return metrics, linear, codes, ls


def test_the_comparison_on_known_differences(paper, known):
    metrics, linear, codes, ls = known
    configurations = ["least_squares", "huber", "end_to_end-k25"]
    table = compare(metrics, paper, codes, ["cpu_act", "mine"], configurations, linear=linear)
    assert list(table.columns) == COLUMNS and set(table["dataset"]) == {"cpu_act"}  # mine: not in the paper
    mae = table[table["metric"] == "mae"].set_index("configuration")
    assert list(mae.index) == ["linear_regression", "least_squares", "huber", "end_to_end-k25"]

    e2e = mae.loc["end_to_end-k25"]
    assert e2e["paper_mean"] == 0.018 and e2e["paper_pm"] == 3.06e-4
    assert e2e["ours_mean"] == pytest.approx(ls.mean() - 0.01) and e2e["ours_two_sigma"] == pytest.approx(
        2 * ls.std(ddof=1)
    )
    assert e2e["difference"] == pytest.approx(ls.mean() - 0.01 - 0.018)
    sigma = math.sqrt((3.06e-4 / 2) ** 2 + ls.std(ddof=1) ** 2 + 0.0005**2 / 3)
    assert e2e["sigma"] == pytest.approx(sigma) and e2e["differs_by_2sigma"]
    assert e2e["p_value"] == pytest.approx(2 / 2**10) and e2e["vs_reference"] == " (+)"
    assert e2e["reference_difference"] == pytest.approx(-0.01)

    least = mae.loc["least_squares"]  # the paper's 0.059 within its spread: no difference, no test
    assert least["difference"] == pytest.approx(ls.mean() - 0.059) and not least["differs_by_2sigma"]
    assert math.isnan(least["p_value"]) and least["vs_reference"] == ""
    assert mae.loc["huber", "vs_reference"] == ""  # a tie

    lr = mae.loc["linear_regression"]  # no spread of its own: the paper's σ and the rounding only
    assert lr["label"] == LINEAR_REGRESSION_LABEL and lr["paper_configuration"] == "least_squares"
    assert lr["paper_mean"] == 0.059 and lr["difference"] == pytest.approx(0.005)
    assert lr["sigma"] == pytest.approx(math.sqrt((8.28e-4 / 2) ** 2 + ROUNDING_SIGMA**2))
    assert lr["differs_by_2sigma"]  # 0.005 > 2 x 5.05e-4
    assert lr["p_value"] == pytest.approx(2 / 2**10) and lr["vs_reference"] == " (-)"  # worse than every seed

    r2 = table[table["metric"] == "r2"].set_index("configuration")
    assert r2.loc["end_to_end-k25", "vs_reference"] == " (+)"  # R^2 higher is better
    assert r2.loc["end_to_end-k25", "paper_mean"] == 0.977


def test_table_6_against_the_sweep(paper):
    selected = pd.DataFrame({"dataset": "cpu_act", "code": "CA", "k": [5, 25], "lambda_kl": [0.0681, 0.3162]})
    rows = compare_lambda_kl(selected, paper, {"cpu_act": "CA"}, ["cpu_act"]).set_index("configuration")
    assert list(rows.index) == ["end_to_end-k5", "end_to_end-k25"]
    assert rows.loc["end_to_end-k5", "paper_mean"] == 0.068 and not rows.loc["end_to_end-k5", "differs_by_2sigma"]
    assert rows.loc["end_to_end-k25", "difference"] == pytest.approx(0.3162 - 0.068)
    assert rows.loc["end_to_end-k25", "differs_by_2sigma"]


def test_the_written_comparison(known, tmp_path):
    metrics, linear, codes, ls = known
    selected = pd.DataFrame({"dataset": "cpu_act", "code": "CA", "k": [25], "lambda_kl": [0.0681]})
    rows = write_paper_comparison(
        str(tmp_path / "paper_comparison"),
        metrics,
        codes,
        ["cpu_act", "mine"],
        ["least_squares", "huber", "end_to_end-k25"],
        linear=linear,
        selected_lambda_kl=selected,
    )
    csv = pd.read_csv(tmp_path / "paper_comparison.csv")
    assert len(csv) == len(rows) == 4 * 3 + 1 and list(csv.columns) == COLUMNS
    md = (tmp_path / "paper_comparison.md").read_text()
    assert "## CA (cpu_act)" in md and "mine" not in md
    e2e = ls - 0.01
    assert (
        f"| End to End k = 25 | 0.018 ± 3.06e-04 | {e2e.mean():.4f} ± {2 * e2e.std(ddof=1):.1e} (+) | "
        f"{e2e.mean() - 0.018:+.4f} (>2σ) |"
    ) in md
    assert f"| {LINEAR_REGRESSION_LABEL} | 0.059 ± 8.28e-04 | 0.0640 (-) | +0.0050 (>2σ) |" in md
    assert "| k = 25 | 0.068 / 0.0681 |" in md
    assert (
        "Lowest test MAE, ours: End to End k = 25 (0.0490), end to end at its best (End to End k = 25) ranks 1 of 3; paper:"
        in md
    )


def test_a_run_without_a_dataset_of_the_paper_says_so_in_one_line(known, tmp_path):
    metrics, linear, _, _ = known
    codes = {"cpu_act": "DB", "mine": "MI"}
    rows = write_paper_comparison(
        str(tmp_path / "paper_comparison"), metrics, codes, ["cpu_act", "mine"], ["least_squares"], linear=linear
    )
    assert rows.empty
    md = (tmp_path / "paper_comparison.md").read_text()
    assert len(md.splitlines()) == 1 and "cpu_act (DB), mine (MI)" in md and "nothing to compare" in md
    csv = pd.read_csv(tmp_path / "paper_comparison.csv")
    assert csv.empty and list(csv.columns) == COLUMNS


def test_linear_regression_against_a_hand_computation():
    """y = 0.2 + 0.5 x + noise on one feature: the least-squares line by the textbook formula, then
    MAE, rMSE and R^2 by hand, on the validation and test splits."""
    rng = np.random.default_rng(1)
    x = rng.uniform(size=40)
    y = 0.2 + 0.5 * x + 0.05 * rng.standard_normal(40)
    data = SplitData(x[:30, None], y[:30, None], x[30:35, None], y[30:35, None], x[35:, None], y[35:, None], 0, 1)
    slope = np.sum((x[:30] - x[:30].mean()) * (y[:30] - y[:30].mean())) / np.sum((x[:30] - x[:30].mean()) ** 2)
    intercept = y[:30].mean() - slope * x[:30].mean()
    got = linear_regression_metrics(data)
    for split, part in (("val", slice(30, 35)), ("test", slice(35, 40))):
        residual = y[part] - (intercept + slope * x[part])
        assert got[f"{split}_mae"] == pytest.approx(np.abs(residual).mean(), rel=1e-9)
        assert got[f"{split}_rmse"] == pytest.approx(np.sqrt((residual**2).mean()), rel=1e-9)
        r2 = 1 - (residual**2).sum() / ((y[part] - y[part].mean()) ** 2).sum()
        assert got[f"{split}_r2"] == pytest.approx(r2, rel=1e-9)


def test_linear_regression_of_images_and_two_targets(tmp_path):
    """Images are flattened into one feature per pixel and channel; two targets are fitted together
    and their metrics averaged as the runs' are. An exactly linear problem is fitted exactly."""
    rng = np.random.default_rng(2)
    X = rng.standard_normal((60, 2, 2, 2))
    w = rng.standard_normal((8, 2))
    y = X.reshape(60, -1) @ w + 0.3
    data = SplitData(X[:40], y[:40], X[40:50], y[40:50], X[50:], y[50:], np.zeros(2), np.ones(2))
    path = tmp_path / "images.npz"
    np.savez(path, **{f: getattr(data, f) for f in SplitData.__dataclass_fields__})
    table = linear_regression_table({"images": str(path)}, {"images": "IM"})
    row = table.iloc[0]
    assert (row["code"], row["train_rows"], row["features"]) == ("IM", 40, 8)
    assert row["test_mae"] == pytest.approx(0, abs=1e-10) and row["test_r2"] == pytest.approx(1)
    table.to_csv(tmp_path / "linear_regression.csv", index=False)
    assert read_linear_regression(tmp_path / "linear_regression.csv").equals(table)


def test_a_damaged_linear_regression_table_is_named(tmp_path):
    path = tmp_path / "linear_regression.csv"
    path.write_text("dataset,code,test_mae\ncpu_act,CA,0.06\n")
    with pytest.raises(DamagedFile, match=f"{path} is damaged or unreadable .*no column test_rmse, test_r2"):
        read_linear_regression(path)
