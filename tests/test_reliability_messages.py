"""Issue 10, class 7: each message names the real cause.

Real files through the real prepare step (the ``file`` source): too few rows was reported as a
feature problem (every column has fewer than 10 distinct values when there are fewer than 10
rows), a header-only file as a feature problem, and a numeric target with one bad string with an
example value that is a valid number. The README counts these cases with the bad data files.
"""

import numpy as np
import pandas as pd
import pytest

from data_helpers import leftovers
from targetcodec.data.prepare import prepare_dataset
from targetcodec.data.sources import DataSourceError

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
