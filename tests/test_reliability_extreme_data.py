"""Fault class bad_data: values that do not survive scaling to float32 stop preparation.

A value far outside the rest of its column (or beyond float32) erases the column when min-max
scaling squeezes every other row into float32's resolution of 0; in a test row it made every test
metric NaN; in the target it crushed the [0, 1] range. Each case is a real CSV file prepared by the
real prepare step (the ``file`` source): it stops with a message naming the dataset, the column
and the row count, and writes nothing, or, with ``extreme_values: drop``, drops and counts the rows.
"""

import numpy as np
import pandas as pd
import pytest

from data_helpers import leftovers
from targetcodec.data.prepare import collapses, prepare_dataset, split_indices
from targetcodec.data.sources import DataSourceError

pytestmark = pytest.mark.fault("bad_data")  # counted by tests/fault_classes.py

SPLIT = {"train": 0.8, "val": 0.1, "test": 0.1, "seed": 0}
N = 200
TRAIN, VAL, TEST = split_indices(N, SPLIT, SPLIT["seed"])  # where each row of a 200-row file lands


def table(**changes) -> pd.DataFrame:
    """200 rows: features a, b, c in [0, 10], target y; ``changes`` = {column: {row: value}}."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.uniform(0, 10, N), "b": rng.uniform(0, 10, N), "c": rng.uniform(0, 10, N)})
    frame["y"] = frame["a"] + np.sin(frame["b"]) + 0.1 * rng.normal(size=N)
    for column, rows in changes.items():
        for row, value in rows.items():
            frame.loc[row, column] = value
    return frame


def run(tmp_path, frame, **spec):
    path = tmp_path / "mine.csv"
    frame.to_csv(path, index=False)
    spec = {"source": "file", "path": str(path), "target": "y", **spec}
    out = tmp_path / "prepared"
    lines = []
    result = prepare_dataset(
        "mine", spec, SPLIT, tmp_path / "cache", out / "mine.npz", out / "mine.json", log=lines.append
    )
    return result, lines


BAD = {  # id: (changes, words the message must contain)
    "feature-beyond-float32-train-row": ({"a": {int(TRAIN[5]): 1e39}}, "feature column 'a' has 1 row(s)"),
    "feature-1e300-train-row": ({"a": {int(TRAIN[5]): 1e300}}, "feature column 'a' has 1 row(s)"),
    "feature-far-outside-train-row": ({"b": {int(TRAIN[9]): 1e30}}, "feature column 'b' has 1 row(s)"),
    "feature-beyond-float32-test-row": ({"a": {int(TEST[2]): 1e39}}, "feature column 'a' has 1 row(s)"),
    "feature-far-outside-test-row": ({"c": {int(TEST[0]): -1e25}}, "feature column 'c' has 1 row(s)"),
    "feature-far-outside-val-row": ({"c": {int(VAL[0]): 1e20}}, "feature column 'c' has 1 row(s)"),
    "feature-two-rows": ({"a": {int(TRAIN[1]): 1e30, int(TEST[1]): 2e30}}, "feature column 'a' has 2 row(s)"),
    "target-far-outside": ({"y": {int(TRAIN[3]): 1e12}}, "target column 'y' has 1 row(s)"),
    "target-beyond-float32-test-row": ({"y": {int(TEST[3]): -1e39}}, "target column 'y' has 1 row(s)"),
    "feature-and-target": ({"a": {int(TRAIN[0]): 1e30}, "y": {int(TEST[0]): 1e15}}, "feature column 'a' has 1 row(s)"),
}


@pytest.mark.parametrize("changes, words", BAD.values(), ids=BAD.keys())
def test_bad_data_is_refused(tmp_path, changes, words):
    with pytest.raises(DataSourceError) as error:
        run(tmp_path, table(**changes))
    message = str(error.value)
    assert message.startswith("dataset 'mine': ") and words in message, message
    column, values = next(iter(changes.items()))
    row = min(values)
    assert f"in row {row};" in message or f"in row {max(values)};" in message, message
    assert "config key 'datasets.mine.extreme_values: drop'" in message
    assert not (tmp_path / "prepared").exists() and not leftovers(tmp_path)


def test_bad_data_is_refused_column_spread_over_hundreds_of_orders_of_magnitude(tmp_path):
    """No few rows are to blame: dropping rows cannot help, so the message says so."""
    frame = table()
    frame["a"] = 10 ** np.linspace(0, 300, N)
    with pytest.raises(DataSourceError) as error:
        run(tmp_path, frame, extreme_values="drop")
    assert "feature column 'a' has values spread so unevenly" in str(error.value)
    assert "no few rows are to blame" in str(error.value) and "'datasets.mine.drop'" in str(error.value)
    assert not (tmp_path / "prepared").exists()


HANDLED = {  # id: (changes, {column: rows dropped})
    "drop-feature-rows": ({"a": {int(TRAIN[5]): 1e39, int(TEST[2]): 1e30}}, {"a": 2}),
    "drop-target-row": ({"y": {int(TRAIN[3]): 1e12}}, {"y": 1}),
    "drop-feature-and-target-rows": ({"b": {int(VAL[1]): -1e30}, "y": {int(TEST[3]): 1e15}}, {"b": 1, "y": 1}),
}


@pytest.mark.parametrize("changes, dropped", HANDLED.values(), ids=HANDLED.keys())
def test_bad_data_is_handled_by_the_documented_rule(tmp_path, changes, dropped):
    result, lines = run(tmp_path, table(**changes), extreme_values="drop")
    s = result.summary
    assert s["rows_with_extreme_values_dropped"] == dropped
    assert sum(s["rows"].values()) == N - sum(dropped.values())
    for column, count in dropped.items():
        assert any(f"dropped {count} row(s) with extreme values in column {column!r}" in line for line in lines), lines
    d = result.data
    for X in (d.X_train, d.X_val, d.X_test):  # every feature keeps its spread, every value is finite in float32
        assert np.isfinite(X.astype(np.float32)).all() and np.abs(X).max() < 2
    assert (d.X_train.min(0) == 0).all() and (d.X_train.max(0) == 1).all()
    assert np.percentile(d.X_train, 50, axis=0).min() > 0.2  # the bulk is not squeezed to 0
    assert d.y_train.min() == 0 and d.y_train.max() == 1 and np.median(d.y_train) > 0.2


def test_heavy_tails_and_large_units_are_not_extreme(tmp_path):
    """The rule is about float32, not about outliers: a lognormal feature (max/median ~ 1e5),
    values in the 1e30s, and a value a million times the rest all pass untouched."""
    rng = np.random.default_rng(1)
    frame = table(c={int(TRAIN[0]): 1e7})
    frame["heavy"] = rng.lognormal(0, 3, N)
    frame["large_units"] = 1e30 * rng.uniform(1, 2, N)
    result, _ = run(tmp_path, frame)
    assert result.summary["rows_with_extreme_values_dropped"] == {}
    assert sum(result.summary["rows"].values()) == N
    assert set(result.summary["features"]) == {"a", "b", "c", "heavy", "large_units"}


def test_the_rule_by_hand():
    """collapses(): fewer distinct float32 values of 1 + scaled value than min(min_distinct, distinct)."""
    ten = np.arange(10.0)
    assert not collapses(ten, 10)
    assert not collapses(np.append(ten, 1e6), 10)  # 9 / 1e6 = 9e-6: distinct steps above float32's 1.2e-7
    assert collapses(np.append(ten, 1e8), 10)  # steps of 1e-8 vanish next to 1 in float32
    assert collapses(np.append(ten, 1e39), 10)
    assert not collapses(np.array([0.0, 1e30, 2e30]), 10)  # large units alone change nothing: 0, 0.5, 1
    assert collapses(np.array([0.0, 1.0, 1e30]), 10)  # 0 and 1 both scale to within 1e-30 of 0
