"""The OpenStreetView-5M stage (section 4 "Larger-scale Experiment", Table 2, Appendix C) on a stand-in:
the source and its cache, the geolocation metrics, the head, the training job (resume, DDP) and the
whole stage through Snakemake."""

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from targetcodec.data.errors import DataSourceError
from targetcodec.data.osv5m_standin import write_standin
from targetcodec.data.sources.osv5m import CACHE_FILES, Cache, prepare, scale_targets, unscale_targets
from targetcodec.geo import accuracy_within, geolocation_metrics, geoscore, haversine_km
from workflow_helpers import copy_workflow, snakemake

PARIS, LONDON = (48.8566, 2.3522), (51.5074, -0.1278)
SMALL = dict(
    width=16,
    depth=2,
    batch_size=128,
    examples=128 * 40,
    warmup_steps=10,
    lr=3e-3,
    log_every=20,
    checkpoint_every=20,
    eval_batch_size=512,
)


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    """The same tiny stand-in in both layouts, and the cache prepared from the shards."""
    root = tmp_path_factory.mktemp("osv5m")
    wds = write_standin(root / "wds", "wds", train=800, test=150, val=60, dim=16, shard_size=300)
    csv = write_standin(root / "csv", "csv", train=800, test=150, dim=16)
    prepare(wds, root / "cache")
    return root, wds, csv, root / "cache"


# --------------------------------------------------------------------------- geolocation metrics
def test_haversine_paris_london_by_hand():
    assert haversine_km(PARIS, LONDON) == pytest.approx(343.56, abs=0.1)  # the usual 344 km
    assert haversine_km((0, 0), (0, 180)) == pytest.approx(np.pi * 6371.0)  # half the equator
    assert haversine_km((90, 0), (-90, 0)) == pytest.approx(np.pi * 6371.0)
    assert haversine_km((10, 170), (10, -170)) == pytest.approx(
        haversine_km((10, -10), (10, 10))
    )  # across the date line


def test_geoscore_and_accuracy_by_hand():
    assert geoscore(0.0) == 5000.0
    assert geoscore(1492.7) == pytest.approx(5000 / np.e)
    d = np.array([0.5, 10, 150, 700, 2000, 3000])
    assert [accuracy_within(d, t) for t in (1, 25, 200, 750, 2500)] == pytest.approx(
        [1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6]
    )
    m = geolocation_metrics(np.array([PARIS, PARIS]), np.array([PARIS, LONDON]))
    assert m["median_km"] == pytest.approx(343.56 / 2, abs=0.1) and m["mean_km"] == pytest.approx(343.56 / 2, abs=0.1)
    assert m["geoscore"] == pytest.approx((5000 + 5000 * np.exp(-343.56 / 1492.7)) / 2, rel=1e-4)
    assert m["acc_1km"] == 0.5 and m["acc_750km"] == 1.0


def test_target_scaling_round_trip():
    coords = np.array([[-90.0, -180.0], [90.0, 180.0], [48.8566, 2.3522]])
    assert scale_targets(coords)[:2].tolist() == [[0, 0], [1, 1]]
    assert np.allclose(unscale_targets(scale_targets(coords)), coords)
    mm = scale_targets(coords, "minmax", coords[:2] * 0.5)
    assert mm[0].tolist() == [-0.5, -0.5]


# --------------------------------------------------------------------------- source and cache
def test_both_layouts_prepare_to_the_same_cache(standin, tmp_path):
    root, _, csv, cache = standin
    summary = prepare(csv, tmp_path / "from_csv")
    for name in CACHE_FILES:
        if name != "summary.json":
            assert (tmp_path / "from_csv" / name).read_bytes() == (cache / name).read_bytes(), name
    assert summary["table1"] == {
        "#num. features": 16,
        "#num. train points": 650,
        "#num. val points": 150,
        "#num. test points": 150,
    }
    c = Cache(cache)
    emb = np.load(cache / "train_embeddings.npy", mmap_mode="r")
    assert isinstance(emb, np.memmap) and emb.dtype == np.float16 and emb.shape == (800, 16)
    assert c.embeddings("val").shape == (150, 16) and c.coordinates("train").shape == (650, 2)
    assert not set(np.load(cache / "val_rows.npy")) & set(np.load(cache / "train_rows.npy"))
    assert (-55 <= c.coordinates("test")[:, 0]).all() and (c.coordinates("test")[:, 0] <= 72).all()


def test_validation_folder_and_fraction(standin, tmp_path):
    _, wds, _, _ = standin
    assert prepare(wds, tmp_path / "a", validation="folder")["table1"]["#num. val points"] == 60
    assert Cache(tmp_path / "a").embeddings("val").shape == (60, 16)
    assert prepare(wds, tmp_path / "b", validation=0.25)["table1"]["#num. val points"] == 200


def _copy_tree(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_a_truncated_or_corrupted_shard_fails_naming_it(standin, tmp_path):
    _, wds, _, _ = standin
    data = _copy_tree(wds, tmp_path / "truncated")
    shard = data / "train" / "000001.tar"
    shard.write_bytes(shard.read_bytes()[:5000])
    with pytest.raises(DataSourceError, match="000001.tar"):
        prepare(data, tmp_path / "cache1")
    assert not (tmp_path / "cache1" / "train_embeddings.npy").exists()  # nothing half-written
    data = _copy_tree(wds, tmp_path / "corrupted")
    shard = data / "train" / "000002.tar"
    raw = bytearray(shard.read_bytes())
    raw[700:1300] = b"\xff" * 600  # inside the first member's data and the next header
    shard.write_bytes(bytes(raw))
    with pytest.raises(DataSourceError, match="000002.tar"):
        prepare(data, tmp_path / "cache2")


def test_a_shard_missing_coordinates_is_rejected(standin, tmp_path):
    _, wds, _, _ = standin
    data = _copy_tree(wds, tmp_path / "nocoords")
    shard = data / "test" / "000000.tar"
    with tarfile.open(shard, "w") as tar:
        for name, payload in (
            ("k1.json", json.dumps({"id": "k1", "longitude": 3.0}).encode()),
            ("k1.street_clip.npy", _npy(16)),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    with pytest.raises(DataSourceError, match=r"000000.tar.*'k1'.*no latitude/longitude"):
        prepare(data, tmp_path / "cache")


def test_a_missing_embedding_fails_naming_the_row(standin, tmp_path):
    _, _, csv, _ = standin
    data = _copy_tree(csv, tmp_path / "csv")
    (data / "embeddings" / "test" / "100805.npy").unlink()
    with pytest.raises(DataSourceError, match="100805.npy"):
        prepare(data, tmp_path / "cache")


def _npy(dim):
    buf = io.BytesIO()
    np.save(buf, np.zeros(dim, np.float32))
    return buf.getvalue()


# --------------------------------------------------------------------------- head and optimiser
def test_head_blocks_start_as_identity_and_runs_are_independent_of_their_pack():
    from targetcodec.heads import PackedAdaLNHead, parameter_count

    gens = lambda seeds: [torch.Generator().manual_seed(s) for s in seeds]  # noqa: E731
    pack = PackedAdaLNHead(16, 5, gens([3, 4]), width=8, depth=3)
    alone = PackedAdaLNHead(16, 5, gens([4]), width=8, depth=3)
    e = torch.randn(7, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float32)
    assert torch.allclose(pack(e)[1], alone(e)[0], atol=1e-6)
    assert all((w == 0).all() for w in pack.fc2_w)  # zero-initialised last layer of each block
    # the blocks are the identity at initialisation: the output depends on e only through the final adaLN
    h = pack.start.expand(2, 7, 8)
    cond = torch.nn.functional.silu(torch.baddbmm(pack.cond_b, e.expand(2, 7, 16), pack.cond_w))
    shift, scale = torch.baddbmm(pack.final_ada_b, cond, pack.final_ada_w).chunk(2, -1)
    expected = torch.baddbmm(pack.out_b, torch.nn.functional.layer_norm(h, (8,)) * (1 + scale) + shift, pack.out_w)
    assert torch.allclose(pack(e), expected, atol=1e-6)
    # Dufour et al.'s released size: width 512, 12 blocks, 1024-d StreetCLIP input, about 36M parameters
    big = PackedAdaLNHead(1024, 2, gens([0]), device="meta")
    assert 35e6 < parameter_count(big) < 40e6


def test_packed_adamw_is_torch_adamw_per_run():
    from targetcodec.optim import PackedAdamW

    p = torch.randn(2, 3, 4)
    packed = p.clone()
    opt = PackedAdamW([packed], [0.05])
    refs = [torch.nn.Parameter(p[r].clone()) for r in range(2)]
    torch_opts = [torch.optim.AdamW([refs[r]], lr=lr, weight_decay=0.05) for r, lr in enumerate((1e-2, 3e-2))]
    for step in range(5):
        g = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(step))
        opt.step([g.clone()], torch.tensor([1e-2, 3e-2]))
        for r in range(2):
            refs[r].grad = g[r].clone()
            torch_opts[r].step()
    for r in range(2):
        assert torch.allclose(packed[r], refs[r].detach(), atol=1e-6)


def test_unit_square_grid_codec():
    from targetcodec.codec import unit_square_grid_codec

    c = unit_square_grid_codec(625)  # endpoints, the 1-D grid's default: the decoder reaches every corner
    assert c.mu.shape == (625, 2) and c.spacing == pytest.approx(1 / 24)
    assert c.mu.min() == 0 and c.mu.max() == pytest.approx(1.0)
    mid = unit_square_grid_codec(625, grid="midpoints")
    assert (
        mid.spacing == pytest.approx(1 / 25)
        and mid.mu.min() == pytest.approx(0.02)
        and mid.mu.max() == pytest.approx(0.98)
    )
    assert len(np.unique(c.mu.numpy().round(6), axis=0)) == 625
    with pytest.raises(ValueError, match="k = 600"):
        unit_square_grid_codec(600)


def test_learning_rate_warms_up_over_500_steps_then_decays():
    from targetcodec.train.osv5m import OSVSettings, warmup_cosine

    assert OSVSettings().total_steps == 3052  # 100M examples at batch 32,768 (Appendix C)
    assert warmup_cosine(0, 500, 3052) == pytest.approx(1 / 500) and warmup_cosine(499, 500, 3052) == 1.0
    assert warmup_cosine(500, 500, 3052) == 1.0 and warmup_cosine(3051, 500, 3052) < 1e-5


# --------------------------------------------------------------------------- the training job
def _job(cache, out, label, seeds, **extra):
    from targetcodec.train.osv5m import Job

    return Job(
        cache=str(cache),
        label=label,
        seeds=seeds,
        settings=dict(SMALL, **extra.pop("settings", {})),
        outputs=[str(out / f"{label}-{s}.json") for s in seeds],
        predictions=[str(out / f"{label}-{s}.npz") for s in seeds],
        **extra,
    )


def test_killed_and_resumed_job_gives_the_same_numbers(standin, tmp_path):
    from targetcodec.train.osv5m import run_job

    _, _, _, cache = standin
    whole = run_job(_job(cache, tmp_path / "a", "end_to_end-k625", [0, 1]))
    ckpt = tmp_path / "b" / "ckpt.pt"
    assert (
        run_job(_job(cache, tmp_path / "b", "end_to_end-k625", [0, 1], checkpoint=str(ckpt), stop_after_step=23))
        is None
    )
    assert ckpt.exists() and not (tmp_path / "b" / "end_to_end-k625-0.json").exists()
    log = tmp_path / "b" / "resume.log"
    resumed = run_job(_job(cache, tmp_path / "b", "end_to_end-k625", [0, 1], checkpoint=str(ckpt), log=str(log)))
    assert "resumed from checkpoint" in log.read_text() and "after step 23" in log.read_text()
    assert [r["metrics"] for r in resumed] == [r["metrics"] for r in whole]
    assert not ckpt.exists()
    # a pack member equals the same seed trained alone
    alone = run_job(_job(cache, tmp_path / "c", "end_to_end-k625", [1]))
    assert alone[0]["metrics"]["test_mae"] == pytest.approx(whole[1]["metrics"]["test_mae"], rel=1e-4)


DDP_TOLERANCE = 1e-4  # relative, on every metric: only the order of floating-point sums differs


def test_ddp_two_processes_equal_one_process(standin, tmp_path):
    """torchrun with 2 gloo processes, each taking half of every batch, against the same job in one process."""
    from dataclasses import asdict

    from targetcodec.train.osv5m import run_job

    _, _, _, cache = standin
    one = run_job(_job(cache, tmp_path / "p1", "end_to_end-k625", [0]))[0]["metrics"]
    spec = asdict(_job(cache, tmp_path / "p2", "end_to_end-k625", [0], log=str(tmp_path / "p2.log")))
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "targetcodec.train.osv5m",
        json.dumps(spec),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "2 process(es)" in (tmp_path / "p2.log").read_text()
    two = json.loads(Path(spec["outputs"][0]).read_text())["metrics"]
    assert one.keys() == two.keys()
    for key, value in one.items():
        assert two[key] == pytest.approx(value, rel=DDP_TOLERANCE, abs=1e-9), key


# --------------------------------------------------------------------------- the stage through Snakemake
@pytest.mark.slow  # runs Snakemake
def test_the_stage_runs_end_to_end_through_snakemake(standin, tmp_path):
    _, wds, _, _ = standin
    workdir = copy_workflow(tmp_path / "wf", git=False)
    snakemake(
        workdir,
        "--cores",
        "2",
        "--configfile",
        "presets/osv5m_standin.yaml",
        "--config",
        "run_datasets=[osv5m]",
        f"osv5m_dir={wds}",
        "osv5m={seeds: 2, head: {width: 16, depth: 2, expansion: 4}, batch_size: 128, examples: 5120, "
        "warmup_steps: 10, lr: 0.003, training_resources: {gpu: 0}}",
    )
    results = workdir / "results" / "osv5m_standin"
    for ext in ("md", "csv", "tex"):
        assert (results / "tables" / f"table2_osv5m.{ext}").stat().st_size > 0
        assert (results / "tables" / f"osv5m_geolocation.{ext}").stat().st_size > 0
    for name in ("osv5m_error_cdf", "osv5m_world_errors"):
        assert (results / "figures" / f"{name}.png").stat().st_size > 0 and (
            results / "figures" / f"{name}.pdf"
        ).exists()
    table = (results / "tables" / "table2_osv5m.md").read_text()
    assert "Least-squares" in table and "End-to-end" in table and "Δ" in table
    for seed in (0, 1):
        record = json.loads((results / "osv5m/runs/end_to_end-k625" / f"seed{seed}.json").read_text())
        assert record["metrics"]["test_mae"] < record["training_mean_test_mae"]  # beats predicting the training mean
    assert json.loads((results / "prepared/osv5m/summary.json").read_text())["table1"]["#num. test points"] == 150
    assert not (results / "checkpoints").exists() or not any((results / "checkpoints").rglob("*.ckpt"))


# --------------------------------------------------------------------------- StreetCLIP embeddings
def test_embed_rule_code_writes_cls_tokens_and_resumes_per_shard(tmp_path):
    transformers = pytest.importorskip("transformers", reason="the embed extra (transformers) is not installed")
    import zipfile

    from PIL import Image

    from targetcodec.data.embed import embed_split, load_model

    config = transformers.CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8
    )
    torch.manual_seed(0)
    transformers.CLIPVisionModel(config).save_pretrained(tmp_path / "model")
    transformers.CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(
        tmp_path / "model"
    )
    rng = np.random.default_rng(0)
    for shard, ids in (("00", ["11", "12", "13"]), ("01", ["21", "22"])):
        (tmp_path / "images" / "train").mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(tmp_path / "images" / "train" / f"{shard}.zip", "w") as z:
            for ident in ids:
                buf = io.BytesIO()
                Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(buf, format="JPEG")
                z.writestr(f"{ident}.jpg", buf.getvalue())
    out = tmp_path / "emb"
    assert embed_split(tmp_path / "images", "train", out, str(tmp_path / "model"), batch_size=2, device="cpu") == 5
    net, processor = load_model(str(tmp_path / "model"))
    with zipfile.ZipFile(tmp_path / "images" / "train" / "01.zip") as z:
        image = Image.open(io.BytesIO(z.read("22.jpg"))).convert("RGB")
    with torch.no_grad():
        expected = net(**processor(images=[image], return_tensors="pt")).last_hidden_state[0, 0].numpy()
    saved = np.load(out / "train" / "22.npy")
    assert saved.shape == (32,) and saved.dtype == np.float32 and np.allclose(saved, expected, atol=1e-5)
    (out / "train" / ".done" / "01").unlink()  # as if killed during the second shard
    assert embed_split(tmp_path / "images", "train", out, str(tmp_path / "model"), device="cpu") == 2
    with pytest.raises(RuntimeError, match="neither a local folder nor in the Hugging Face cache"):
        load_model(str(tmp_path / "no-such-model"))


def test_every_method_of_the_library_runs_on_this_stage(standin, tmp_path):
    from targetcodec.train.osv5m import run_job

    _, _, _, cache = standin
    for label in ("huber", "softmax_least_squares-k9", "hard_binning-k9", "soft_binning-k9", "trained_codec-k10"):
        record = run_job(
            _job(cache, tmp_path, label, [0], settings=dict(examples=128 * 3, log_every=3, codec_pretrain_steps=20))
        )[0]
        assert np.isfinite(record["metrics"]["test_mae"]) and record["metrics"]["test_median_km"] >= 0, label


@pytest.mark.slow  # runs Snakemake
def test_the_stage_needs_its_data_folder(tmp_path):
    workdir = copy_workflow(tmp_path / "wf", git=False)
    proc = snakemake(workdir, "-n", "--cores", "1", "--config", "run_datasets=[osv5m]", check=False)
    assert proc.returncode != 0 and "osv5m_dir" in proc.stdout + proc.stderr
