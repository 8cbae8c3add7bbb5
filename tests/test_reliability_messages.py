"""Fault class bad_data: each message names the real cause.

Real files through the real prepare step (the ``file`` source): too few rows was reported as a
feature problem (every column has fewer than 10 distinct values when there are fewer than 10
rows), a header-only file as a feature problem, and a numeric target with one bad string with an
example value that is a valid number.
"""

import numpy as np
import pandas as pd
import pytest

from data_helpers import leftovers
from targetcodec.data.prepare import prepare_dataset
from targetcodec.data.sources import DataSourceError

pytestmark = pytest.mark.fault("bad_data")  # counted by tests/fault_classes.py

SPLIT = {"train": 0.8, "val": 0.1, "test": 0.1, "seed": 0}


def refused(tmp_path, write, name="mine.csv") -> str:
    path = tmp_path / name
    write(path)
    out = tmp_path / "prepared"
    with pytest.raises(DataSourceError) as error:
        prepare_dataset(
            "mine",
            {"source": "file", "path": str(path), "target": "y"},
            SPLIT,
            tmp_path,
            out / "mine.npz",
            out / "mine.json",
            log=lambda message: None,
        )
    assert not out.exists() and not leftovers(tmp_path)
    return str(error.value)


def frame(n):
    rng = np.random.default_rng(0)
    return pd.DataFrame({"a": rng.uniform(size=n), "b": rng.uniform(size=n), "y": rng.uniform(size=n)})


def test_bad_data_is_refused_too_few_rows_names_the_rows_not_the_features(tmp_path):
    message = refused(tmp_path, lambda p: frame(8).to_csv(p, index=False))
    assert "file " in message and "mine.csv has 8 rows: too few for a train/val/test split (need 30)" in message, (
        message
    )
    assert "feature" not in message


def test_bad_data_is_refused_header_only_csv_says_it_has_no_rows(tmp_path):
    message = refused(tmp_path, lambda p: p.write_text("a,b,y\n"))
    assert "mine.csv has no data rows, only a header: too few for a train/val/test split" in message, message
    assert "feature" not in message


def test_bad_data_is_refused_header_only_parquet_says_it_has_no_rows(tmp_path):
    message = refused(tmp_path, lambda p: frame(0).to_parquet(p, index=False), "mine.parquet")
    assert "mine.parquet has no data rows, only a header" in message, message


def test_bad_data_is_refused_one_bad_string_in_a_numeric_target_is_shown(tmp_path):
    def write(path):
        table = frame(200).astype({"y": object})
        table.loc[17, "y"] = "12,5"  # a decimal comma: not a number for the reader
        table.to_csv(path, index=False)

    message = refused(tmp_path, write)
    assert "target column 'y' is not numeric: 1 of 200 values are not numbers (e.g. '12,5' in row 17;" in message, (
        message
    )


def test_bad_data_is_refused_several_bad_strings_are_counted_with_examples(tmp_path):
    def write(path):
        table = frame(200).astype({"y": object})
        for row, text in ((3, "n.a."), (40, "?"), (41, "high"), (90, "--")):
            table.loc[row, "y"] = text
        table.to_csv(path, index=False)

    message = refused(tmp_path, write)
    assert "4 of 200 values are not numbers (e.g. 'n.a.' in row 3, '?' in row 40, 'high' in row 41;" in message, message


def test_bad_data_is_refused_a_header_naming_the_target_twice(tmp_path):
    """pandas reads a second `y` as `y.1`: a copy of the target became a feature, and every method
    learnt to read it off (test R^2 about 1). Refused with the column and how often it is named."""
    message = refused(
        tmp_path, lambda p: frame(50).assign(y2=frame(50)["y"]).to_csv(p, index=False, header=list("aby") + ["y"])
    )
    assert "dataset 'mine': " in message and "mine.csv names column 'y' (2 times) more than once" in message, message


def test_bad_data_is_refused_a_header_naming_a_feature_three_times(tmp_path):
    def write(path):
        rng = np.random.default_rng(0)
        pd.DataFrame(rng.uniform(size=(50, 5))).to_csv(path, index=False, header=["a", "b", "a", "y", "a"])

    message = refused(tmp_path, write)
    assert "names column 'a' (3 times) more than once" in message and "'y'" not in message, message


def test_bad_data_is_refused_a_hand_placed_cache_file_naming_a_column_twice(tmp_path):
    """The same through the raw-data cache (a network source's file placed by hand): named as it is,
    not as a damaged download to fetch again."""
    from targetcodec.data.sources.tables import load

    (tmp_path / "ailerons.csv").write_text("goal,a,goal\n1,2,3\n4,5,6\n")
    with pytest.raises(DataSourceError) as error:
        load("ailerons", {"source": "openml", "id": 44137, "target": "goal"}, tmp_path)
    message = str(error.value)
    assert message.startswith("dataset 'ailerons': ") and "names column 'goal' (2 times)" in message, message
    assert "download" not in message


def test_bad_data_is_refused_a_data_frame_naming_a_column_twice():
    """Whatever the source delivers: a data frame with two columns of one name stops preparation."""
    from targetcodec.data.prepare import select_numeric_features

    table = pd.DataFrame(np.random.default_rng(0).uniform(size=(40, 3)), columns=["a", "y", "y"])
    with pytest.raises(DataSourceError, match=r"dataset 'mine': the table names column 'y' \(2 times\)"):
        select_numeric_features(table, ["y"], dataset="mine")
