"""The network sources with their real clients, offline: openml-python on a pre-filled cache,
ucimlrepo against a local HTTP server, medmnist's reader on the official npz."""

import shutil
import socket
import time

import numpy as np
import pandas as pd
import pytest

from data_helpers import DataHost, data_host, fill_openml_cache, leftovers, no_network, uci_variables  # noqa: F401
from targetcodec.data.cache import read_sidecar, sidecar_of
from targetcodec.data.download import ensure_cached
from targetcodec.data.network import DownloadPolicy
from targetcodec.data.prepare import prepare, prepare_dataset
from targetcodec.data.sources import DataSourceError, load_verified

SPLIT = {"train": 0.8, "val": 0.1, "test": 0.1, "seed": 0}
FAST = DownloadPolicy(attempts=3, backoff_seconds=0.01, timeout_seconds=10)
AILERONS = {"code": "AE", "source": "openml", "id": 44137, "target": "goal"}
WINE = {"code": "WN", "source": "uci", "id": 186, "target": "quality"}
RETINA = {"code": "RM", "source": "medmnist", "flag": "retinamnist", "model": "cnn"}
DIAMONDS = {
    "code": "DM",
    "source": "openml",
    "id": 44140,
    "target": "price",
    "target_transform": "log",
    "served_target_transform": "log",
}


def prepared(tmp_path, key, spec, cache):
    return prepare_dataset(
        key, spec, SPLIT, cache, tmp_path / f"{key}.npz", tmp_path / f"{key}.json", log=lambda m: None
    )


# --- openml -------------------------------------------------------------------------------------


@pytest.mark.shared_data
def test_openml_source_on_a_prefilled_cache_without_network(shared_data, tmp_path, no_network):  # noqa: F811
    table = pd.read_csv(shared_data / "ailerons.csv")
    cache = tmp_path / "cache"
    fill_openml_cache(cache, 44137, table, "goal", "Ailerons")
    checks = ensure_cached("ailerons", AILERONS, cache, FAST, log=lambda m: None)
    path = cache / "ailerons.parquet"
    assert [c.path for c in checks] == [path] and checks[0].state == "verified"
    assert read_sidecar(path) == checks[0].sha256
    pd.testing.assert_frame_equal(pd.read_parquet(path), table)
    result = prepared(tmp_path, "ailerons", AILERONS, cache)
    assert result.summary["rows"] == {"train": 11000, "val": 1375, "test": 1375}
    assert result.summary["feature_shape"] == [33] and result.summary["table1"]["matches"]
    assert result.summary["raw_files"][0]["state"] == "verified"


def test_openml_download_that_fails_names_dataset_source_and_id(tmp_path, no_network):  # noqa: F811
    cache = tmp_path / "cache"
    lines = []
    with pytest.raises(DataSourceError) as error:
        ensure_cached("ailerons", AILERONS, cache, DownloadPolicy(2, 0.01, 10), log=lines.append)
    message = str(error.value)
    assert "dataset 'ailerons': OpenML id 44137 (https://www.openml.org/d/44137)" in message
    assert (
        "failed after 2 attempt(s)" in message
        and "snakemake --cores 1 download" in message
        and "ailerons.csv" in message
    )
    assert any("attempt 1/2 failed" in line for line in lines)
    assert not (cache / "ailerons.parquet").exists() and not leftovers(cache)


def diamonds_like(n=400, seed=0):
    rng = np.random.default_rng(seed)
    table = pd.DataFrame({c: rng.uniform(0.2, 5, n).round(3) for c in ("carat", "depth", "table", "x", "y", "z")})
    table["price"] = rng.integers(326, 18824, n).astype(float)
    return table


def test_diamonds_target_is_log_transformed_exactly_once(tmp_path, no_network):  # noqa: F811
    """OpenML 44140 serves log(price): the download stores dollars, preparation takes the log once,
    exactly as for a raw-price diamonds.csv placed by hand."""
    raw = diamonds_like()
    served = raw.assign(price=np.log(raw["price"]))
    downloaded, by_hand = tmp_path / "downloaded", tmp_path / "by_hand"
    fill_openml_cache(downloaded, 44140, served, "price", "diamonds")
    ensure_cached("diamonds", DIAMONDS, downloaded, FAST, log=lambda m: None)
    np.testing.assert_allclose(pd.read_parquet(downloaded / "diamonds.parquet")["price"], raw["price"], rtol=1e-12)
    by_hand.mkdir()
    raw.to_csv(by_hand / "diamonds.csv", index=False)
    a = prepared(tmp_path / "a", "diamonds", DIAMONDS, downloaded)
    b = prepared(tmp_path / "b", "diamonds", DIAMONDS, by_hand)
    train_prices = raw["price"].to_numpy()[np.isin(np.arange(len(raw)), _train_rows(len(raw)))]
    np.testing.assert_allclose(a.data.y_max, np.log(train_prices.max()), rtol=1e-12)
    np.testing.assert_allclose(a.data.y_min, np.log(train_prices.min()), rtol=1e-12)
    np.testing.assert_allclose(a.data.y_test, b.data.y_test, rtol=1e-12)
    assert a.summary["target_transform"] == "log" and a.summary["feature_shape"] == [6]


def _train_rows(n):
    from targetcodec.data.prepare import split_indices

    return split_indices(n, SPLIT, SPLIT["seed"])[0]


# --- uci ----------------------------------------------------------------------------------------


@pytest.mark.shared_data
def test_uci_source_with_the_real_client_on_a_local_server(shared_data, tmp_path, data_host):  # noqa: F811
    table = pd.read_csv(shared_data / "wine_quality.csv")
    data_host.uci[186] = (table, uci_variables(table, "quality", other=["color"]))
    cache = tmp_path / "cache"
    ensure_cached("wine_quality", WINE, cache, FAST, log=lambda m: None)
    assert data_host.requests == ["/api/dataset?id=186", "/static/public/186/data.csv"]
    pd.testing.assert_frame_equal(pd.read_parquet(cache / "wine_quality.parquet"), table)
    result = prepared(tmp_path, "wine_quality", WINE, cache)
    assert result.summary["rows"] == {"train": 5197, "val": 650, "test": 650}
    assert result.summary["feature_shape"] == [11] and result.summary["dropped_columns"] == {"color": "categorical"}
    assert result.summary["table1"]["differences"] == ["features: [11] here, [7] in the paper"]
    # a second run finds the file and its record: nothing is downloaded again
    ensure_cached("wine_quality", WINE, cache, FAST, log=lambda m: None)
    assert len(data_host.requests) == 2


def test_uci_unknown_id_is_reported_at_once(tmp_path, data_host):  # noqa: F811
    spec = {"source": "uci", "id": 999999, "target": "y"}
    with pytest.raises(
        DataSourceError,
        match=r"dataset 'mine': UCI id 999999 .*UCI has no importable dataset with "
        r"this id \(config key 'datasets.mine.id'\)",
    ):
        ensure_cached("mine", spec, tmp_path, FAST, log=lambda m: None)
    assert data_host.requests == ["/api/dataset?id=999999"]  # a definite answer: no retries
    assert list(tmp_path.iterdir()) == []


def test_download_from_an_unreachable_host_retries_then_fails_clearly(tmp_path, monkeypatch):
    import ucimlrepo.fetch

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(ucimlrepo.fetch, "API_BASE_URL", f"http://127.0.0.1:{port}/api/dataset")
    lines = []
    with pytest.raises(DataSourceError) as error:
        ensure_cached("wine_quality", WINE, tmp_path, FAST, log=lines.append)
    message = str(error.value)
    assert f"dataset 'wine_quality': UCI id 186 (http://127.0.0.1:{port}/api/dataset?id=186)" in message
    assert "download failed after 3 attempt(s)" in message and "ConnectionError" in message
    retries = [line for line in lines if "next attempt in" in line]
    assert len(retries) == 2 and "attempt 1/3 failed" in retries[0] and "attempt 2/3 failed" in retries[1]
    assert list(tmp_path.iterdir()) == []


def test_download_that_hangs_times_out(tmp_path, data_host):  # noqa: F811
    table = pd.DataFrame({"x": range(20), "y": range(20)})
    data_host.uci[5] = (table, uci_variables(table, "y"))
    data_host.mode = "hang"
    start = time.monotonic()
    with pytest.raises(DataSourceError, match=r"failed after 1 attempt\(s\) \(0.5 s timeout each\)"):
        ensure_cached(
            "mine", {"source": "uci", "id": 5, "target": "y"}, tmp_path, DownloadPolicy(1, 0, 0.5), log=lambda m: None
        )
    assert time.monotonic() - start < 5
    assert list(tmp_path.iterdir()) == []


# --- medmnist -----------------------------------------------------------------------------------


@pytest.mark.shared_data
def test_medmnist_source_with_the_real_reader(shared_data, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    shutil.copy(shared_data / "retinamnist.npz", cache / "retinamnist.npz")
    raw, checks = load_verified("retinamnist", RETINA, cache)
    assert checks[0].state == "verified" and "MD5" in checks[0].recorded_by
    assert {k: v.shape for k, v in raw.images.items()} == {
        "train": (1080, 28, 28, 3),
        "val": (120, 28, 28, 3),
        "test": (400, 28, 28, 3),
    }
    result = prepare(raw, RETINA, SPLIT, "retinamnist")
    assert result.summary["rows"] == {"train": 1080, "val": 120, "test": 400}
    assert result.summary["feature_shape"] == [3, 28, 28] and result.summary["table1"]["matches"]
    assert set(np.unique(result.data.y_train)) == {0, 0.25, 0.5, 0.75, 1}  # grades 0-4 scaled to [0, 1]
    # under another key the reader is given the file under the name it expects
    shutil.copy(shared_data / "retinamnist.npz", cache / "retina.npz")
    other, _ = load_verified("retina", RETINA, cache)
    np.testing.assert_array_equal(other.images["test"], raw.images["test"])


@pytest.mark.shared_data
def test_medmnist_download_checks_the_md5_and_leaves_no_partial_file(shared_data, tmp_path, data_host, monkeypatch):  # noqa: F811
    from medmnist.info import INFO

    data_host.files["/retinamnist.npz"] = (shared_data / "retinamnist.npz").read_bytes()
    monkeypatch.setitem(INFO["retinamnist"], "url", f"{data_host.url}/retinamnist.npz")
    data_host.mode = "truncate"
    with pytest.raises(DataSourceError, match=r"dataset 'rm': MedMNIST 'retinamnist' .*failed after 3 attempt"):
        ensure_cached("rm", RETINA, tmp_path, FAST, log=lambda m: None)
    assert list(tmp_path.iterdir()) == []  # neither the file nor a temporary part of it
    data_host.mode = "ok"
    checks = ensure_cached("rm", RETINA, tmp_path, FAST, log=lambda m: None)
    assert checks[0].state == "verified" and sidecar_of(tmp_path / "rm.npz").exists()
    assert (tmp_path / "rm.npz").read_bytes() == data_host.files["/retinamnist.npz"]


def test_medmnist_unknown_flag(tmp_path):
    with pytest.raises(DataSourceError, match=r"MedMNIST has no flag 'retinamnistt' \(config key 'datasets.rm.flag'\)"):
        load_verified("rm", {"source": "medmnist", "flag": "retinamnistt"}, tmp_path)


def test_uci_missing_value_symbol_becomes_nan():
    from targetcodec.data.sources.uci import with_missing_values_as_nan

    table = pd.DataFrame({"a": ["1.5", "?", "2.5"], "b": ["x", "y", "?"], "y": [1.0, 2.0, 3.0]})
    out = with_missing_values_as_nan(table, {"has_missing_values": "yes", "missing_values_symbol": "?"})
    assert out["a"].dtype == float and np.isnan(out["a"][1]) and out["b"].isna().tolist() == [False, False, True]
    assert with_missing_values_as_nan(table, {"has_missing_values": "no"}) is table
