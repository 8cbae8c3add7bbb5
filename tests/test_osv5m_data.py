"""The OpenStreetView-5M data preparation as the real data is: bad samples (coordinates, embeddings,
damaged shards) are skipped and counted, and stop the preparation only above
``osv5m.max_bad_fraction``; validation rows from osv5m-wds's val/ split; the checks that refuse a
bad input naming the key, file, shard or sample; a damaged cache file named when read back.

Every fault is written into a stand-in in the real formats (webdataset tar shards with sizes.json,
or train.csv/test.csv with one .npy per row) and read by the real ``prepare``."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from targetcodec.data.errors import DataSourceError
from targetcodec.data.osv5m_standin import npy_bytes, read_shard, write_shard, write_standin
from targetcodec.data.sources.osv5m import CACHE_FILES, Cache, prepare
from targetcodec.io import DamagedFile

DIM = 8


pytestmark = pytest.mark.fault("osv5m_data")  # counted by tests/fault_classes.py


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A small stand-in in both layouts: 400 training rows in 4 shards of 100, 100 test rows, 50 val rows."""
    root = tmp_path_factory.mktemp("osv5m_data")
    wds = write_standin(root / "wds", "wds", train=400, test=100, val=50, dim=DIM, shard_size=100)
    csv = write_standin(root / "csv", "csv", train=400, test=100, dim=DIM)
    return wds, csv


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _meta(parts: dict) -> dict:
    return json.loads(parts[".json"])


def _set_meta(parts: dict, **changes) -> None:
    meta = _meta(parts)
    for key, value in changes.items():
        if value is None:
            meta.pop(key, None)
        else:
            meta[key] = value
    parts[".json"] = json.dumps(meta).encode()  # json.dumps writes NaN as NaN, which json.loads reads


def _ids(cache: Path, split: str = "train") -> list[str]:
    return pd.read_csv(cache / f"{split}_meta.csv", dtype={"id": str})["id"].tolist()


def _log():
    lines: list[str] = []
    return lines, lines.append


def _left_behind(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --------------------------------------------------------------------------- bad samples, osv5m-wds
BAD_WDS = {  # key index in shard train/000001.tar -> (how it is damaged, the reason it is counted under)
    0: "coordinates_invalid",  # latitude NaN
    1: "coordinates_out_of_range",  # latitude 95
    2: "coordinates_out_of_range",  # longitude -181
    3: "coordinates_missing",  # no latitude
    4: "embedding_missing",  # .json only
    5: "metadata_missing",  # .street_clip.npy only
    6: "embedding_wrong_size",  # 9 values
    7: "embedding_not_finite",  # a NaN
    8: "embedding_beyond_float16",  # 1e5: inf in the float16 cache
    9: "embedding_unreadable",  # not an .npy
    10: "metadata_unreadable",  # not JSON
    11: "coordinates_invalid",  # longitude "east"
}


def _damage_wds(root: Path) -> list[str]:
    """Damage the first 12 samples of train/000001.tar as BAD_WDS says; returns their keys."""
    shard = root / "train" / "000001.tar"
    samples = read_shard(shard)
    for i, (_, parts) in enumerate(samples[: len(BAD_WDS)]):
        if i == 0:
            _set_meta(parts, latitude=float("nan"))
        elif i == 1:
            _set_meta(parts, latitude=95.0)
        elif i == 2:
            _set_meta(parts, longitude=-181.0)
        elif i == 3:
            _set_meta(parts, latitude=None)
        elif i == 4:
            del parts[".street_clip.npy"]
        elif i == 5:
            del parts[".json"]
        elif i == 6:
            parts[".street_clip.npy"] = npy_bytes(np.zeros(DIM + 1, np.float32))
        elif i == 7:
            emb = np.ones(DIM, np.float32)
            emb[3] = np.nan
            parts[".street_clip.npy"] = npy_bytes(emb)
        elif i == 8:
            emb = np.ones(DIM, np.float32)
            emb[5] = 1e5
            parts[".street_clip.npy"] = npy_bytes(emb)
        elif i == 9:
            parts[".street_clip.npy"] = b"garbage, not an npy file"
        elif i == 10:
            parts[".json"] = b"{not json"
        elif i == 11:
            _set_meta(parts, longitude="east")
    write_shard(shard, samples)
    return [key for key, _ in samples[: len(BAD_WDS)]]


def test_bad_samples_are_skipped_and_counted_per_reason(data, tmp_path):
    wds, _ = data
    root = _copy(wds, tmp_path / "wds")
    bad_keys = _damage_wds(root)
    lines, log = _log()
    summary = prepare(root, tmp_path / "cache", validation="folder", max_bad_fraction=0.05, log=log)
    train = summary["splits"]["train"]
    expected = {}
    for reason in BAD_WDS.values():
        expected[reason] = expected.get(reason, 0) + 1
    assert train["bad_by_reason"] == expected
    assert train["bad_samples"] == 12 and train["rows"] == 388
    assert train["bad_by_shard"] == {str(root / "train" / "000001.tar"): 12}
    assert summary["splits"]["test"]["bad_samples"] == 0 and summary["max_bad_fraction"] == 0.05
    assert summary["out_of_range_coordinates"] == "skipped"
    # the skipped rows are absent, the others kept in order, with their embeddings and coordinates
    ids = _ids(tmp_path / "cache")
    assert not set(bad_keys) & set(ids) and len(ids) == 388
    good = [k for k, _ in read_shard(wds / "train" / "000001.tar")][12:]
    assert ids[100:188] == good
    emb = np.load(tmp_path / "cache" / "train_embeddings.npy")
    assert emb.shape == (388, DIM) and np.isfinite(emb).all()
    first_good = read_shard(wds / "train" / "000001.tar")[12][1]
    assert np.array_equal(
        emb[100], np.frombuffer(first_good[".street_clip.npy"][-DIM * 4 :], np.float32).astype(np.float16)
    )
    assert np.load(tmp_path / "cache" / "train_targets.npy")[100].tolist() == [
        _meta(first_good)["latitude"],
        _meta(first_good)["longitude"],
    ]
    # the log names each sample, its shard and what is wrong, and the counts
    text = "\n".join(lines)
    for key in bad_keys:
        assert f"000001.tar, sample '{key}'" in text, key
    assert "latitude 95.0 / longitude" in text and "out of range" in text
    assert "beyond float16's range" in text and "NaN/inf" in text
    assert "skipped 12 bad samples of 400" in text
    # the embedding-size mismatch names the sample and the first sample that set the size
    first = read_shard(wds / "train" / "000000.tar")[0][0]
    assert (
        f"sample '{bad_keys[6]}': embedding of {DIM + 1} values where the first sample "
        f"(shard {root / 'train' / '000000.tar'}, sample '{first}') has {DIM}"
    ) in text
    assert any(f"sample '{bad_keys[6]}': embedding of 9 values" in s for s in train["bad_first"])
    assert json.loads((tmp_path / "cache" / "summary.json").read_text())["splits"]["train"]["bad_samples"] == 12


def test_too_many_bad_samples_stop_naming_the_shard(data, tmp_path):
    wds, _ = data
    root = _copy(wds, tmp_path / "wds")
    _damage_wds(root)
    # 12 of 400 training samples (3%) are bad: more than 1% stops, as soon as the count passes 4
    with pytest.raises(DataSourceError) as err:
        prepare(root, tmp_path / "cache", max_bad_fraction=0.01)
    message = str(err.value)
    assert "split 'train'" in message and "osv5m.max_bad_fraction" in message
    assert f"stopped at {root / 'train' / '000001.tar'}" in message and "of 400 samples are bad" in message
    assert "coordinates_out_of_range 2" in message
    assert _left_behind(tmp_path / "cache") == []  # nothing half-written
    # 0 stops at the first bad sample
    with pytest.raises(DataSourceError, match=r"1 of 400 samples are bad.*000001.tar"):
        prepare(root, tmp_path / "cache", max_bad_fraction=0)
    with pytest.raises(DataSourceError, match="osv5m.max_bad_fraction"):
        prepare(root, tmp_path / "cache", max_bad_fraction=1.5)


def test_a_failure_after_the_training_split_removes_the_whole_cache(data, tmp_path):
    """A good cache, then the test split goes bad: no mixture of new and old files is left."""
    wds, _ = data
    root = _copy(wds, tmp_path / "wds")
    prepare(root, tmp_path / "cache")
    assert set(CACHE_FILES) <= set(_left_behind(tmp_path / "cache"))
    shard = root / "test" / "000000.tar"
    samples = read_shard(shard)
    for _, parts in samples[:5]:
        _set_meta(parts, latitude=float("nan"))
    write_shard(shard, samples)
    with pytest.raises(DataSourceError, match=r"split 'test': 2 of 100 .*test/000000.tar"):
        prepare(root, tmp_path / "cache", max_bad_fraction=0.01)
    assert _left_behind(tmp_path / "cache") == []


def test_a_damaged_member_is_skipped_and_the_shard_read_on(data, tmp_path):
    """A damaged tar header in the middle of a shard: tarfile's default takes it for the end of the
    shard and loses the rest silently; the reading skips to the next member instead."""
    wds, _ = data
    root = _copy(wds, tmp_path / "wds")
    shard = root / "train" / "000002.tar"
    raw = bytearray(shard.read_bytes())
    offset = 20 * 2048  # sample 20's .json header (each sample: 4 blocks of 512 bytes)
    assert raw[offset : offset + 6] == read_shard(shard)[20][0].encode()[:6]
    raw[offset : offset + 512] = b"\xff" * 512
    shard.write_bytes(bytes(raw))
    lines, log = _log()
    summary = prepare(root, tmp_path / "cache", max_bad_fraction=0.01, log=log)
    train = summary["splits"]["train"]
    key = read_shard(wds / "train" / "000002.tar")[20][0]
    assert train["bad_by_reason"] == {"metadata_missing": 1} and train["rows"] == 399
    assert f"000002.tar, sample '{key}': has no metadata (.json)" in "\n".join(lines)
    ids = _ids(tmp_path / "cache")
    assert key not in ids and read_shard(wds / "train" / "000002.tar")[99][0] in ids  # the shard's last sample


def test_a_truncated_shard_counts_what_it_lost(data, tmp_path):
    wds, _ = data
    root = _copy(wds, tmp_path / "wds")
    shard = root / "train" / "000001.tar"
    shard.write_bytes(shard.read_bytes()[: 30 * 2048 + 612])  # 30 samples, then a part of sample 30's .json
    lines, log = _log()
    summary = prepare(root, tmp_path / "cache", max_bad_fraction=0.5, log=log)
    train = summary["splits"]["train"]
    key = read_shard(wds / "train" / "000001.tar")[30][0]
    assert train["rows"] == 330 and train["bad_samples"] == 70
    assert train["bad_by_reason"] == {"member_unreadable": 1, "missing_from_shard": 69}
    assert train["bad_by_shard"] == {str(shard): 70}
    text = "\n".join(lines)
    assert f"000001.tar, sample '{key}': unreadable" in text
    assert "holds 31 samples where sizes.json says 100: 69 missing" in text
    with pytest.raises(DataSourceError, match=r"stopped at .*train/000001.tar.*member_unreadable"):
        prepare(root, tmp_path / "cache2")  # the default, 0.1%


def test_a_shard_short_of_its_sizes_json_count(data, tmp_path):
    """A shard that is a complete tar but holds fewer samples than sizes.json says (an interrupted
    download rewritten, a wrong shard): counted, naming the shard; sizes.json in the split folder
    keyed by shard name (the webdataset convention) is read too."""
    wds, _ = data
    root = _copy(wds, tmp_path / "wds")
    shard = root / "train" / "000003.tar"
    write_shard(shard, read_shard(shard)[:90])
    lines, log = _log()
    summary = prepare(root, tmp_path / "cache", max_bad_fraction=0.05, log=log)
    assert summary["splits"]["train"]["bad_by_reason"] == {"missing_from_shard": 10}
    assert f"shard {shard}: holds 90 samples where sizes.json says 100: 10 missing" in "\n".join(lines)
    with pytest.raises(DataSourceError, match=r"10 of 400 samples are bad .*stopped at .*train/000003.tar"):
        prepare(root, tmp_path / "cache2")
    # the same with train/sizes.json keyed by shard name
    sizes = json.loads((root / "sizes.json").read_text())
    (root / "sizes.json").unlink()
    (root / "train" / "sizes.json").write_text(
        json.dumps({k.split("/")[1]: v for k, v in sizes.items() if k.startswith("train/")})
    )
    with pytest.raises(DataSourceError, match=r"missing_from_shard 10.*train/000003.tar"):
        prepare(root, tmp_path / "cache3")


def test_a_shard_that_is_not_a_tar_counts_all_its_samples(data, tmp_path):
    wds, _ = data
    root = _copy(wds, tmp_path / "wds")
    shard = root / "train" / "000000.tar"
    shard.write_bytes(b"\x00\x01 not a tar" * 300)
    summary = prepare(root, tmp_path / "cache", max_bad_fraction=0.3)
    assert summary["splits"]["train"]["bad_by_reason"] == {"shard_unreadable": 100}
    assert summary["splits"]["train"]["rows"] == 300
    with pytest.raises(DataSourceError, match=r"100 of 400 .*train/000000.tar.*not a readable tar"):
        prepare(root, tmp_path / "cache2")


# --------------------------------------------------------------------------- bad samples, csv layout
def test_bad_csv_rows_and_non_finite_embeddings_are_skipped(data, tmp_path):
    _, csv = data
    root = _copy(csv, tmp_path / "csv")
    table = pd.read_csv(root / "train.csv", dtype=str, keep_default_na=False)
    ids = table["id"].tolist()
    folder = root / "embeddings" / "train"
    table.loc[3, "latitude"] = "nan"
    table.loc[4, "longitude"] = ""
    table.loc[5, "longitude"] = "200.0"
    table.to_csv(root / "train.csv", index=False)
    (folder / f"{ids[6]}.npy").unlink()
    np.save(folder / f"{ids[7]}.npy", np.full(DIM, np.inf, np.float32))
    big = np.load(folder / f"{ids[8]}.npy")
    big[0] = 70000.0  # beyond float16 (65504): would be inf in the cache
    np.save(folder / f"{ids[8]}.npy", big)
    edge = np.load(folder / f"{ids[9]}.npy")
    edge[0] = 65504.0  # float16's largest value: kept
    np.save(folder / f"{ids[9]}.npy", edge)
    np.save(folder / f"{ids[10]}.npy", np.zeros(DIM + 3, np.float32))
    (folder / f"{ids[11]}.npy").write_bytes(b"\x93NUMPY truncated")
    lines, log = _log()
    summary = prepare(root, tmp_path / "cache", max_bad_fraction=0.05, log=log)
    train = summary["splits"]["train"]
    assert train["bad_by_reason"] == {
        "coordinates_invalid": 1,
        "coordinates_missing": 1,
        "coordinates_out_of_range": 1,
        "embedding_missing": 1,
        "embedding_not_finite": 1,
        "embedding_beyond_float16": 1,
        "embedding_wrong_size": 1,
        "embedding_unreadable": 1,
    }
    assert train["rows"] == 392 and train["bad_by_shard"] == {str(root / "train.csv"): 8}
    kept = _ids(tmp_path / "cache")
    assert not set(ids[3:9] + ids[10:12]) & set(kept) and ids[9] in kept
    emb = np.load(tmp_path / "cache" / "train_embeddings.npy")
    assert np.isfinite(emb).all() and emb[kept.index(ids[9]), 0] == 65504
    text = "\n".join(lines)
    assert f"train.csv row id {ids[6]!r}: no embedding {ids[6]}.npy" in text
    assert f"train.csv row id {ids[8]!r}: embedding value 70000 is beyond float16's range" in text
    assert f"train.csv row id {ids[10]!r}: embedding of {DIM + 3} values where the first sample" in text
    assert f"{ids[11]}.npy" in text
    with pytest.raises(DataSourceError, match=r"split 'train': 1 of 400 .*train.csv"):
        prepare(root, tmp_path / "cache2")


def test_a_repeated_csv_id_is_refused_naming_it(data, tmp_path):
    _, csv = data
    root = _copy(csv, tmp_path / "csv")
    table = pd.read_csv(root / "train.csv", dtype=str, keep_default_na=False)
    repeated = table.loc[2, "id"]
    table.loc[250, "id"] = repeated
    table.to_csv(root / "train.csv", index=False)
    with pytest.raises(DataSourceError, match=rf"train.csv: id '{repeated}' is on lines 4, 252; .*share it"):
        prepare(root, tmp_path / "cache")
    assert _left_behind(tmp_path / "cache") == []


# --------------------------------------------------------------------------- validation rows
def test_validation_auto_uses_the_val_split_where_it_exists(data, tmp_path):
    wds, csv = data
    lines, log = _log()
    summary = prepare(wds, tmp_path / "wds", validation="auto", log=log)
    assert summary["validation"]["mode"] == "folder" and summary["validation"]["requested"] == "auto"
    assert summary["validation"]["source"] == "the osv5m-wds val/ split"
    assert summary["table1"]["#num. val points"] == 50 and summary["table1"]["#num. train points"] == 400
    assert Cache(tmp_path / "wds").embeddings("val").shape == (50, DIM)
    assert "validation: the osv5m-wds val/ split" in lines
    # without val/ shards (and in the csv layout), a hold-out of the test set's size is carved out
    no_val = _copy(wds, tmp_path / "no_val")
    shutil.rmtree(no_val / "val")
    for root, name in ((no_val, "a"), (csv, "b")):
        summary = prepare(root, tmp_path / name, validation="auto")
        assert summary["validation"]["mode"] == "test_size"
        assert summary["validation"]["source"].startswith("carved from the training rows")
        assert summary["table1"]["#num. val points"] == 100 and summary["table1"]["#num. train points"] == 300
    assert prepare(wds, tmp_path / "c", validation=0.25)["validation"]["source"] == (
        "carved from the training rows (a fraction 0.25, seed 0)"
    )


def test_a_validation_that_leaves_no_training_rows_is_refused(data, tmp_path):
    wds, _ = data
    with pytest.raises(
        DataSourceError, match=r"validation 0\.999 \(config key 'osv5m.validation'\) leaves no training"
    ):
        prepare(wds, tmp_path / "cache", validation=0.999)
    assert _left_behind(tmp_path / "cache") == []  # no empty cache
    with pytest.raises(DataSourceError, match=r"validation 0\.001 .*'osv5m.validation'.* leaves no validation rows"):
        prepare(wds, tmp_path / "cache", validation=0.001)
    with pytest.raises(DataSourceError, match=r"'sideways' \(config key 'osv5m.validation'\)"):
        prepare(wds, tmp_path / "cache", validation="sideways")
    no_val = _copy(wds, tmp_path / "no_val")
    shutil.rmtree(no_val / "val")
    with pytest.raises(DataSourceError, match=r"'folder' \(config key 'osv5m.validation'\) needs .*no_val/val"):
        prepare(no_val, tmp_path / "cache", validation="folder")
    assert _left_behind(tmp_path / "cache") == []


# --------------------------------------------------------------------------- a damaged cache
@pytest.mark.parametrize(
    "name, damage, words",
    [
        ("train_embeddings.npy", lambda p: p.write_bytes(p.read_bytes()[:-100]), "mmap length is greater"),
        ("train_targets.npy", lambda p: p.write_bytes(b"PK\x03\x04" + b"\x00" * 200), "BadZipFile"),
        ("train_rows.npy", lambda p: p.write_bytes(p.read_bytes()[:100]), "train_rows.npy is damaged"),
        ("train_embeddings.npy", lambda p: np.save(p, np.zeros((7, DIM), np.float16)), "summary.json says 400 rows"),
        ("summary.json", lambda p: p.write_text('{"splits": '), "JSONDecodeError"),
    ],
)
@pytest.mark.fault("damaged_files")
def test_a_damaged_cache_file_is_named_with_what_to_do(data, tmp_path, name, damage, words):
    wds, _ = data
    cache = tmp_path / "cache"
    prepare(wds, cache)
    damage(cache / name)
    with pytest.raises(DamagedFile) as err:
        c = Cache(cache)
        c.embeddings("train"), c.coordinates("train")
    message = str(err.value)
    assert str(cache / name) in message and words in message
    assert f"delete the cache folder {cache} and prepare it again (rule osv5m_prepare" in message


# --------------------------------------------------------------------------- through the workflow
@pytest.mark.slow
def test_the_prepare_rule_passes_the_new_keys(data, tmp_path):
    """osv5m.max_bad_fraction and osv5m.validation reach the preparation through the rule."""
    from workflow_helpers import copy_workflow, snakemake

    wds, _ = data
    root = _copy(wds, tmp_path / "wds")
    _damage_wds(root)
    workdir = copy_workflow(tmp_path / "wf", git=False)
    cache = workdir / "results" / "osv5m_standin" / "prepared" / "osv5m"
    target = str((cache / "summary.json").relative_to(workdir))  # before --config, which takes every word after it
    args = ["--cores", "1", target, "--configfile", "presets/osv5m_standin.yaml", "--config", f"osv5m_dir={root}"]
    proc = snakemake(workdir, *args, check=False)
    assert proc.returncode != 0  # 12 of 400 bad with the default 0.1%
    log = (workdir / "results" / "osv5m_standin" / "logs" / "prepare" / "osv5m.log").read_text()
    assert "osv5m.max_bad_fraction = 0.001" in log and "train/000001.tar" in log
    assert not (cache / "summary.json").exists()
    snakemake(workdir, *args, "osv5m={max_bad_fraction: 0.05}")
    summary = json.loads((cache / "summary.json").read_text())
    assert summary["max_bad_fraction"] == 0.05 and summary["splits"]["train"]["bad_samples"] == 12
    assert summary["validation"] == {
        "mode": "folder",
        "requested": "auto",
        "seed": 0,
        "source": "the osv5m-wds val/ split",
    }


# --------------------------------------------------------------------------- embedding images
class _Processor:
    """A stand-in for CLIPImageProcessor: each image's 2 x 2 thumbnail, 12 floats."""

    def __call__(self, images, return_tensors):
        import torch

        pixels = [np.asarray(im.resize((2, 2)), np.float32).reshape(-1) for im in images]
        return {"pixel_values": torch.tensor(np.stack(pixels))}


class _Net:
    """A stand-in for CLIPVisionModel: the pixels as the CLS token."""

    def __call__(self, pixel_values):
        from types import SimpleNamespace

        return SimpleNamespace(last_hidden_state=pixel_values[:, None, :])


def test_an_unreadable_image_is_skipped_by_the_embed_step_and_counted_by_the_preparation(tmp_path):
    import io
    import zipfile

    from PIL import Image

    from targetcodec.data.embed import embed_split

    rng = np.random.default_rng(0)
    ids = ["11", "12", "13", "14"]
    (tmp_path / "images" / "train").mkdir(parents=True)
    with zipfile.ZipFile(tmp_path / "images" / "train" / "00.zip", "w") as z:
        for ident in ids:
            buf = io.BytesIO()
            Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(buf, format="JPEG")
            z.writestr(f"{ident}.jpg", buf.getvalue() if ident != "13" else b"not a jpeg at all")
    lines, log = _log()
    out = tmp_path / "data" / "embeddings"
    n = embed_split(
        tmp_path / "images", "train", out, "unused", batch_size=2, device="cpu", log=log, loaded=(_Net(), _Processor())
    )
    assert n == 3 and sorted(p.stem for p in (out / "train").glob("*.npy")) == ["11", "12", "14"]
    assert any("00.zip: skipped 13.jpg: unreadable image" in line for line in lines)
    assert (out / "train" / ".done" / "00").read_text() == "3\nunreadable 13.jpg\n"
    # the preparation (csv layout) counts the image without embedding as a bad sample
    root = tmp_path / "data"
    frame = pd.DataFrame({"id": ids, "latitude": [1.0, 2.0, 3.0, 4.0], "longitude": [5.0, 6.0, 7.0, 8.0]})
    frame.to_csv(root / "train.csv", index=False)
    frame.to_csv(root / "test.csv", index=False)
    (out / "test").mkdir()
    for ident in ids:
        np.save(out / "test" / f"{ident}.npy", np.load(out / "train" / "11.npy"))
    summary = prepare(root, tmp_path / "cache", validation=0.5, max_bad_fraction=0.5)
    assert summary["splits"]["train"]["bad_by_reason"] == {"embedding_missing": 1}
    assert summary["splits"]["train"]["rows"] == 3 and _ids(tmp_path / "cache") == ["11", "12", "14"]
