"""Preparation of real and bad data: the paper's shapes from ../shared/data, the raw-data cache's
checks, and a clear error (with nothing written) for each kind of bad data."""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from data_helpers import fill_openml_cache, leftovers, no_network  # noqa: F401
from targetcodec.data.cache import CorruptedCacheFile, digest_of, sidecar_of
from targetcodec.data.download import ensure_cached
from targetcodec.data.network import DownloadPolicy
from targetcodec.data.prepare import prepare_dataset
from targetcodec.data.sources import DataSourceError
from targetcodec.data.sources.tables import write_table

REPO = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((REPO / "config.yaml").read_text())
SPLIT = CONFIG["split"]
QUIET = dict(log=lambda message: None)


def run_prepare(tmp_path, key, spec, cache):
    out = tmp_path / "prepared"
    return prepare_dataset(key, spec, SPLIT, cache, out / f"{key}.npz", out / f"{key}.json", **QUIET)


def assert_nothing_written(tmp_path):
    out = tmp_path / "prepared"
    assert not out.exists() or list(out.iterdir()) == [], list(out.iterdir())
    assert not leftovers(tmp_path)


# --- the paper's datasets, from ../shared/data as the data cache ----------------------------------

SHARED = {  # key: (rows train/val/test, features); CA's 820 test rows are 8,192 rows split 80/10/10
    "ailerons": ((11000, 1375, 1375), [33]),
    "elevators": ((13279, 1660, 1660), [16]),
    "cpu_act": ((6553, 819, 820), [21]),
    "wine_quality": ((5197, 650, 650), [11]),
    "retinamnist": ((1080, 120, 400), [3, 28, 28]),
}


@pytest.mark.shared_data
@pytest.mark.parametrize("key", list(SHARED))
def test_shared_data_as_the_data_cache_gives_the_papers_shapes(key, shared_data, tmp_path):
    result = run_prepare(tmp_path, key, CONFIG["datasets"][key], shared_data)
    rows, features = SHARED[key]
    s = result.summary
    assert (s["rows"]["train"], s["rows"]["val"], s["rows"]["test"]) == rows
    assert s["feature_shape"] == features
    assert s["raw_files"][0]["path"] == str(shared_data / Path(s["raw_files"][0]["path"]).name)
    assert (tmp_path / "prepared" / f"{key}.npz").exists() and (tmp_path / "prepared" / f"{key}.json").exists()
    expected_differences = {
        "wine_quality": ["features: [11] here, [7] in the paper"],
        "cpu_act": ["test: 820 here, 819 in the paper"],
    }.get(key, [])
    assert s["table1"]["differences"] == expected_differences
    assert 0 <= result.data.y_train.min() and result.data.y_train.max() == 1


@pytest.mark.shared_data
def test_nothing_is_written_into_a_data_cache_of_files_placed_by_hand(shared_data, tmp_path):
    cache = tmp_path / "copy"  # a copy: a regression must not write into ../shared/data
    cache.mkdir()
    shutil.copy(shared_data / "cpu_act.csv", cache / "cpu_act.csv")
    checks = ensure_cached("cpu_act", CONFIG["datasets"]["cpu_act"], cache, **QUIET)
    assert checks[0].state == "unrecorded" and checks[0].sha256 == digest_of(shared_data / "cpu_act.csv")
    assert [p.name for p in cache.iterdir()] == ["cpu_act.csv"]


# --- bad data: a clear error, or a documented handling, and nothing half-written ------------------


def table(n=200, seed=0, **columns):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"a": rng.uniform(size=n), "b": rng.uniform(size=n), "y": rng.uniform(size=n)})
    return frame.assign(**columns)


def hand_placed(tmp_path, frame, key="mine"):
    cache = tmp_path / "cache"
    cache.mkdir(exist_ok=True)
    frame.to_csv(cache / f"{key}.csv", index=False)
    return cache


UCI = {"source": "uci", "id": 1, "target": "y"}


@pytest.mark.parametrize(
    "frame, spec, words",
    [
        (table(), {**UCI, "target": "price"}, "target column(s) ['price'] not found"),
        (
            table(y=["high", "low"] * 100),
            UCI,
            "target column 'y' is not numeric: 200 of 200 values are not numbers (e.g. 'high' in row 0",
        ),
        (table(y=5.0), UCI, "the target is constant on the training split (value 5)"),
        (table(n=12), UCI, "has 12 rows: too few for a train/val/test split (need 30)"),
        (table(y=np.nan), UCI, "0 complete rows is too few"),
        (
            table(y=np.linspace(-1, 1, 200)),
            {**UCI, "target_transform": "log"},
            "target_transform' is 'log', but the target has values <= 0",
        ),
    ],
    ids=[
        "missing-target",
        "non-numeric-target",
        "constant-target",
        "too-few-rows",
        "all-nan-target",
        "log-of-negative",
    ],
)
def test_bad_data_gives_a_clear_error_and_writes_nothing(tmp_path, frame, spec, words):
    cache = hand_placed(tmp_path, frame)
    with pytest.raises(DataSourceError) as error:
        run_prepare(tmp_path, "mine", spec, cache)
    assert "dataset 'mine'" in str(error.value) and words in str(error.value)
    assert_nothing_written(tmp_path)


def test_rows_with_missing_values_are_dropped_and_counted(tmp_path):
    frame = table()
    frame.loc[[3, 50], "a"] = np.nan
    frame.loc[[7], "y"] = np.nan
    result = run_prepare(tmp_path, "mine", UCI, hand_placed(tmp_path, frame))
    assert result.summary["rows_with_missing_values_dropped"] == 3
    assert sum(result.summary["rows"].values()) == 197


def test_a_corrupted_download_is_reported_with_its_path_and_what_to_do(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    write_table(table(), cache / "mine.parquet")
    path = cache / "mine.parquet"
    path.write_bytes(path.read_bytes()[:-100])  # truncated after the download
    with pytest.raises(CorruptedCacheFile) as error:
        run_prepare(tmp_path, "mine", UCI, cache)
    message = str(error.value)
    assert f"cached file {path} is corrupted or truncated" in message and "snakemake --cores 1 download" in message
    assert f"the record {sidecar_of(path)} says" in message
    assert_nothing_written(tmp_path)


def test_a_hand_placed_file_that_fails_its_configured_sha256_is_reported_and_left_alone(tmp_path):
    cache = hand_placed(tmp_path, table())
    before = (cache / "mine.csv").read_bytes()
    spec = {**UCI, "sha256": "0" * 64}
    for attempt in (
        lambda: run_prepare(tmp_path, "mine", spec, cache),
        lambda: ensure_cached("mine", spec, cache, **QUIET),
    ):
        with pytest.raises(CorruptedCacheFile, match="config key 'datasets.mine.sha256' says 0000.*placed by hand"):
            attempt()
    assert (cache / "mine.csv").read_bytes() == before and sorted(p.name for p in cache.iterdir()) == ["mine.csv"]
    assert_nothing_written(tmp_path)


def test_an_unreadable_cached_file_is_reported(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "mine.parquet").write_bytes(b"not a parquet file")
    with pytest.raises(DataSourceError, match=r"cannot read cached file .*mine.parquet"):
        run_prepare(tmp_path, "mine", UCI, cache)
    assert_nothing_written(tmp_path)


def test_a_corrupted_download_is_fetched_again(tmp_path, no_network):  # noqa: F811
    """openml-python keeps its own files, so a damaged cache file is rebuilt even offline."""
    frame = table(n=300)
    spec = {"source": "openml", "id": 990001, "target": "y"}
    cache = tmp_path / "cache"
    fill_openml_cache(cache, 990001, frame, "y", "mine")
    ensure_cached("mine", spec, cache, **QUIET)
    path = cache / "mine.parquet"
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])
    lines = []
    checks = ensure_cached("mine", spec, cache, DownloadPolicy(1, 0, 10), log=lines.append)
    assert any("is corrupted" in line and "fetching it again" in line for line in lines)
    assert checks[0].state == "verified" and path.read_bytes() == good


def test_an_unwritable_data_cache_is_reported_before_any_download(tmp_path):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    with pytest.raises(DataSourceError, match=r"cannot write to the data cache .*file.*put mine.parquet there by hand"):
        ensure_cached("mine", UCI, not_a_folder / "cache", **QUIET)


def test_a_csv_placed_by_hand_is_taken_before_a_download(tmp_path):
    cache = hand_placed(tmp_path, table(seed=1))
    write_table(table(seed=2), cache / "mine.parquet")
    result = run_prepare(tmp_path, "mine", UCI, cache)
    assert result.summary["raw_files"] == [
        {"path": str(cache / "mine.csv"), "sha256": digest_of(cache / "mine.csv"), "state": "unrecorded"}
    ]


def test_bike_sharing_columns_give_the_papers_six_features(tmp_path):
    """UCI 275's hourly columns (values made up, ranges as in the data) through the rules and the
    config entry: casual and registered (which add up to cnt) never become features."""
    rng = np.random.default_rng(0)
    n = 500
    days = pd.date_range("2011-01-01", periods=n, freq="h")
    frame = pd.DataFrame(
        {
            "instant": np.arange(1, n + 1),
            "dteday": days.strftime("%Y-%m-%d"),
            "season": rng.integers(1, 5, n),
            "yr": rng.integers(0, 2, n),
            "mnth": rng.integers(1, 13, n),
            "hr": days.hour,
            "holiday": rng.integers(0, 2, n),
            "weekday": rng.integers(0, 7, n),
            "workingday": rng.integers(0, 2, n),
            "weathersit": rng.integers(1, 5, n),
            "temp": rng.uniform(size=n).round(2),
            "atemp": rng.uniform(size=n).round(4),
            "hum": rng.uniform(size=n).round(2),
            "windspeed": rng.uniform(size=n).round(4),
            "casual": rng.integers(0, 300, n),
            "registered": rng.integers(0, 800, n),
        }
    )
    frame["cnt"] = frame["casual"] + frame["registered"]
    result = run_prepare(
        tmp_path, "bike_sharing", CONFIG["datasets"]["bike_sharing"], hand_placed(tmp_path, frame, "bike_sharing")
    )
    assert result.summary["features"] == ["mnth", "hr", "temp", "atemp", "hum", "windspeed"]
    dropped = result.summary["dropped_columns"]
    assert (
        dropped["instant"] == "identifier"
        and dropped["dteday"] == "date"
        and dropped["season"].startswith("fewer than 10")
    )
    assert dropped["casual"] == dropped["registered"] == "configured (datasets.*.drop)"
