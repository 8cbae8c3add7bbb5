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
from targetcodec.osv5m.geo import accuracy_within, geolocation_metrics, geoscore, haversine_km
from workflow_helpers import copy_workflow, job_counts, snakemake

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


@pytest.mark.fault("osv5m_data")
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


@pytest.mark.fault("osv5m_data")
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


@pytest.mark.fault("osv5m_data")
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
    from targetcodec.osv5m.heads import PackedAdaLNHead, parameter_count

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
    """Appendix C's schedule through the library's (optim.learning_rate_factor), as the job takes it."""
    from targetcodec.optim import learning_rate_factor
    from targetcodec.osv5m.settings import OSVSettings

    s = OSVSettings()
    assert s.total_steps == 3052  # 100M examples at batch 32,768 (Appendix C)
    factor = [learning_rate_factor(step, s.total_steps, "cosine", s.warmup_fraction) for step in range(s.total_steps)]
    assert factor[0] == pytest.approx(1 / 500) and factor[498] == pytest.approx(499 / 500) and factor[499] == 1.0
    assert factor[500] == 1.0 and 0 < factor[3051] < 1e-5
    assert factor[1776] == pytest.approx(0.5 * (1 + np.cos(np.pi * 1276 / 2552)))  # cosine from step 500 to 3052


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


@pytest.mark.fault("interrupted_jobs")
def test_killed_and_resumed_job_gives_the_same_numbers(standin, tmp_path):
    from targetcodec.pack import TrainingStopped
    from targetcodec.train.osv5m import run_job, stop_after_step

    _, _, _, cache = standin
    whole = run_job(_job(cache, tmp_path / "a", "end_to_end-k625", [0, 1]))
    ckpt = tmp_path / "b" / "ckpt.pt"
    with stop_after_step(23), pytest.raises(TrainingStopped):
        run_job(_job(cache, tmp_path / "b", "end_to_end-k625", [0, 1], checkpoint=str(ckpt)))
    assert ckpt.exists() and not (tmp_path / "b" / "end_to_end-k625-0.json").exists()
    log = tmp_path / "b" / "resume.log"
    resumed = run_job(_job(cache, tmp_path / "b", "end_to_end-k625", [0, 1], checkpoint=str(ckpt), log=str(log)))
    assert "resumed from checkpoint" in log.read_text() and "after step 23" in log.read_text()
    assert [r["metrics"] for r in resumed] == [r["metrics"] for r in whole]
    assert not ckpt.exists()
    # a pack member equals the same seed trained alone
    alone = run_job(_job(cache, tmp_path / "c", "end_to_end-k625", [1]))
    assert alone[0]["metrics"]["test_mae"] == pytest.approx(whole[1]["metrics"]["test_mae"], rel=1e-4)


@pytest.mark.fault("concurrent_runs")
def test_a_second_job_on_a_live_checkpoint_stops_naming_it(standin, tmp_path):
    """Two working directories writing one results folder: while a job holds its checkpoint, another
    job of the same checkpoint stops before it reads or writes anything."""
    from targetcodec.locks import CheckpointInUse, checkpoint_lock
    from targetcodec.train.osv5m import run_job

    _, _, _, cache = standin
    ckpt = tmp_path / "ckpt.pt"
    with checkpoint_lock(ckpt), pytest.raises(CheckpointInUse, match=str(ckpt)):
        run_job(_job(cache, tmp_path / "out", "least_squares", [0], checkpoint=str(ckpt)))
    assert not ckpt.exists() and not list((tmp_path / "out").glob("*.json"))


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
    """The whole stage, its data folder given as datasets.osv5m.path; then a truncated run record
    stops the report with a message naming it, and once deleted only its job and the report run again."""
    _, wds, _, _ = standin
    workdir = copy_workflow(tmp_path / "wf", git=False)
    (workdir / "data.yaml").write_text(f"datasets:\n  osv5m: {{path: {wds}}}\n")
    args = [
        "--cores",
        "2",
        "--configfile",
        "presets/osv5m_standin.yaml",
        "data.yaml",
        "--config",
        "run_datasets=[osv5m]",
        "osv5m={seeds: 2, head: {width: 16, depth: 2, expansion: 4}, batch_size: 128, examples: 5120, "
        "warmup_steps: 10, lr: 0.003, training_resources: {gpu: 0}}",
    ]
    snakemake(workdir, *args)
    results = workdir / "results" / "osv5m_standin"
    for ext in ("md", "csv", "tex"):
        assert (results / "tables" / f"table2_osv5m.{ext}").stat().st_size > 0
        assert (results / "tables" / f"osv5m_geolocation.{ext}").stat().st_size > 0
    for name in ("osv5m_error_cdf", "osv5m_world_errors"):
        assert (results / "figures" / f"{name}.png").stat().st_size > 0 and (
            results / "figures" / f"{name}.pdf"
        ).exists()
    table = (results / "tables" / "table2_osv5m.md").read_text()
    assert "Least-squares" in table and "End-to-end" in table and "Δ" in table and "failed" not in table
    for seed in (0, 1):
        record = json.loads((results / "osv5m/runs/end_to_end-k625" / f"seed{seed}.json").read_text())
        assert record["metrics"]["test_mae"] < record["training_mean_test_mae"]  # beats predicting the training mean
        assert record["failed"] is False and record["code"] == "OSV5M" and record["provenance"]["wall_seconds"] > 0
    assert json.loads((results / "prepared/osv5m/summary.json").read_text())["table1"]["#num. test points"] == 150
    assert not (results / "checkpoints").exists() or not any((results / "checkpoints").rglob("*.ckpt"))

    run_file = results / "osv5m/runs/least_squares/seed1.json"
    intact = json.loads(run_file.read_text())
    run_file.write_text(run_file.read_text()[:200])  # newer than its inputs: Snakemake would not rebuild it
    proc = snakemake(workdir, *args, check=False)
    assert proc.returncode != 0
    log = (results / "logs" / "osv5m_report.log").read_text()
    assert f"{run_file.relative_to(workdir)} is damaged or unreadable (JSONDecodeError" in log
    assert "delete it and run the workflow again" in log
    run_file.unlink()
    proc = snakemake(workdir, *args)
    counts = job_counts(proc.stdout + proc.stderr)
    assert counts == {"osv5m_train": 1, "osv5m_report": 1, "all": 1}, counts  # that pack and the report
    assert json.loads(run_file.read_text())["metrics"] == intact["metrics"]  # the same numbers again


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


# --------------------------------------------------------------------------- the library's pieces
def test_the_data_order_has_a_seed_stream_of_its_own():
    """Seed 0's epoch-0 order is not drawn from the generator its initialisation uses (seed 0)."""
    from targetcodec.train.osv5m import DataOrder

    order = DataOrder(500, [0, 1], "cpu")
    first = order.indices(0, 500)
    for r, seed in enumerate((0, 1)):
        assert not torch.equal(first[r], torch.randperm(500, generator=torch.Generator().manual_seed(seed)))
        assert sorted(first[r].tolist()) == list(range(500))
    assert not torch.equal(first[0], first[1]) and not torch.equal(first[0], order.indices(1, 500)[0])
    # a resumed job's order: step 7 (epochs 1 and 2 at batch 200 of 500 rows) drawn afresh
    assert torch.equal(DataOrder(500, [0, 1], "cpu").indices(7, 200), DataOrder(500, [0, 1], "cpu").indices(7, 200))
    whole = DataOrder(500, [0], "cpu")
    assert torch.equal(
        torch.cat([whole.indices(s, 200) for s in range(8)], 1)[:, 1400:1600],
        DataOrder(500, [0], "cpu").indices(7, 200),
    )


def test_host_memory_batches_equal_device_batches(standin, tmp_path):
    """The GPU path's data placement on the CPU: data_on_device 'no' (gathered in host buffers, copied
    per batch: pinned memory on a GPU) gives the numbers of 'yes' (the data on the device)."""
    from targetcodec.train.osv5m import embeddings_fit_on_device, run_job

    _, _, _, cache = standin
    runs = {}
    for mode in ("yes", "no"):
        log = tmp_path / f"{mode}.log"
        runs[mode] = run_job(
            _job(cache, tmp_path / mode, "least_squares", [0], log=str(log), settings=dict(data_on_device=mode))
        )[0]
        assert ("host memory" in log.read_text()) == (mode == "no")
    assert runs["yes"]["metrics"] == runs["no"]["metrics"]
    assert embeddings_fit_on_device(10, 21) and not embeddings_fit_on_device(10, 20)  # auto: under half the free memory


@pytest.mark.fault("damaged_files")
@pytest.mark.parametrize("damage", ["truncated", "empty"])
def test_a_damaged_checkpoint_names_its_file(standin, tmp_path, damage):
    """Loaded as the tabular stage's checkpoints are (weights only, nothing unpickled): a damaged one
    names itself and says what to do; deleted, the job starts again."""
    from targetcodec.pack import TrainingStopped
    from targetcodec.train.osv5m import run_job, stop_after_step

    _, _, _, cache = standin
    ckpt = tmp_path / "ckpt.pt"
    job = _job(cache, tmp_path, "least_squares", [0], checkpoint=str(ckpt), settings=dict(examples=128 * 6))
    with stop_after_step(3), pytest.raises(TrainingStopped):
        run_job(job)
    torch.load(ckpt, weights_only=True)  # tensors, lists and numbers only
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"")
    with pytest.raises(RuntimeError) as error:
        run_job(job)
    assert f"checkpoint {ckpt} cannot be read" in str(error.value) and "delete it to start again" in str(error.value)
    ckpt.unlink()
    assert np.isfinite(run_job(job)[0]["metrics"]["test_mae"])


def test_run_records_are_the_tabular_ones(standin, tmp_path):
    """Provenance, failed/failure and what the tables read (report.aggregate.run_row) as for a tabular run."""
    from targetcodec.report.aggregate import run_row
    from targetcodec.train.osv5m import run_job

    _, _, _, cache = standin
    record = run_job(_job(cache, tmp_path, "least_squares", [3]))[0]
    assert record["failed"] is False and record["failure"] is None
    assert record["provenance"]["pack_seeds"] == [3] and record["provenance"]["versions"]["torch"] == torch.__version__
    assert record["hyperparameters"]["lr"] == SMALL["lr"] and record["mean_predictor_val_mae"] > 0
    row = run_row(tmp_path / "least_squares-3.json")
    assert row["test_mae"] == record["metrics"]["test_mae"] and row["dataset"] == "osv5m" and row["code"] == "OSV5M"


def _report_files(folder: Path) -> dict:
    return {
        f"{kind}_{ext}": str(folder / f"{kind}.{ext}")
        for kind, exts in (("table2", "md csv tex"), ("geo", "md csv tex"), ("cdf", "png pdf"), ("world", "png pdf"))
        for ext in exts.split()
    }


@pytest.mark.fault("failed_runs")
def test_a_diverged_run_fails_and_stays_out_of_the_tables(standin, tmp_path):
    """The tabular failure rule: a run whose learning rate blows it up (NaN, or no better than the
    training mean) is recorded as failed with its reason, and Table 2 and the geolocation table leave
    it out and say so."""
    from targetcodec.report.osv5m import write_report
    from targetcodec.train.osv5m import run_job

    _, _, _, cache = standin
    good = run_job(_job(cache, tmp_path / "ls", "least_squares", [0, 1]))
    bad = run_job(_job(cache, tmp_path / "e2e", "end_to_end-k625", [0, 1], settings=dict(lr=1e6, warmup_steps=1)))
    for record in bad:
        assert record["failed"] is True, record["metrics"]["val_mae"]
        assert record["failure"].startswith(("diverged", "best validation MAE")), record["failure"]
    assert not any(r["failed"] for r in good)
    runs = [str(tmp_path / "ls" / f"least_squares-{s}.json") for s in (0, 1)]
    runs += [str(tmp_path / "e2e" / f"end_to_end-k625-{s}.json") for s in (0, 1)]
    predictions = {
        label: [p.replace(".json", ".npz") for p in runs if f"/{label}-" in p]
        for label in ("least_squares", "end_to_end-k625")
    }
    out = _report_files(tmp_path / "report")
    write_report(runs, predictions, out)
    table = Path(out["table2_md"]).read_text()
    assert "failed (0/2)" in table and "nan" not in table.lower().replace("n/a", "")
    assert "2 run(s) failed and are left out" in table and "end_to_end-k625 seed 1 (" in table
    geo = Path(out["geo_md"]).read_text()
    assert "failed" in geo and "2 run(s) failed" in geo
    ls_mae = np.mean([r["metrics"]["test_mae"] for r in good])
    assert f"{ls_mae:.3f}" in table


@pytest.mark.fault("damaged_files")
@pytest.mark.parametrize("which", ["run record", "predictions"])
@pytest.mark.parametrize("damage", ["truncated", "empty"])
def test_a_damaged_record_or_predictions_file_names_itself(standin, tmp_path, which, damage):
    from targetcodec.io import DamagedFile
    from targetcodec.report.osv5m import write_report
    from targetcodec.train.osv5m import run_job

    _, _, _, cache = standin
    assert not run_job(_job(cache, tmp_path, "least_squares", [0]))[0]["failed"]
    record, predictions = tmp_path / "least_squares-0.json", tmp_path / "least_squares-0.npz"
    path = record if which == "run record" else predictions
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"")
    with pytest.raises(DamagedFile) as error:
        write_report([str(record)], {"least_squares": [str(predictions)]}, _report_files(tmp_path / "report"))
    assert str(error.value).startswith(f"{path} is damaged or unreadable (")
    assert "delete it and run the workflow again" in str(error.value)


# --------------------------------------------------------------------------- every key takes effect or is refused
REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
STAGE_BASE = {"run_datasets": None, "datasets": {"osv5m": {"enabled": True}}, "osv5m_dir": "/data/osv5m"}

# key -> (a valid other value, what base and change both add to the config for the key to matter)
CHANGES = {
    "osv5m.methods": (["least_squares", "soft_binning"], {}),
    "osv5m.k": (9, {}),
    "osv5m.seeds": (3, {}),
    "osv5m.embeddings": ("/data/embeddings", {}),
    "osv5m.validation": ("folder", {}),
    "osv5m.validation_seed": (1, {}),
    "osv5m.max_bad_fraction": (0.01, {}),
    "osv5m.target_scaling": ("minmax", {}),
    "osv5m.head.width": (64, {}),
    "osv5m.head.depth": (3, {}),
    "osv5m.head.expansion": (2, {}),
    "osv5m.batch_size": (1024, {}),
    "osv5m.examples": (1000, {}),
    "osv5m.lr": (1e-4, {}),
    "osv5m.warmup_steps": (10, {}),
    "osv5m.weight_decay": (0.01, {}),
    "osv5m.grad_clip": (2.0, {}),
    "osv5m.precision": ("bf16", {}),
    "osv5m.tf32": (False, {}),
    "osv5m.data_on_device": ("no", {}),
    "osv5m.parallel": ("ddp", {}),
    "osv5m.pack_size": (2, {}),
    "osv5m.ddp_processes": (2, {"osv5m": {"parallel": "ddp"}}),  # processes of a DDP job
    "osv5m.checkpoint_every": (7, {}),
    "osv5m.log_every": (7, {}),
    "osv5m.eval_batch_size": (7, {}),
    "osv5m.threads": (2, {}),
    "osv5m.training_resources": ({"mem_mb": 1000}, {}),
    "osv5m.embed.model": ("/models/streetclip", {}),
    "osv5m.embed.images": ("/data/images", {}),
    "osv5m.embed.batch_size": (8, {}),
    "osv5m.embed.resources": ({"gpu": 0}, {}),
    "codec.init_lambda_sigma": (2.0, {}),
    "codec.soft_binning_lambda_sigma": (1.0, {}),
    "codec.alpha": (1e-3, {}),
    "codec.weight_decay": (1e-3, {}),
    "codec.weight_decay_mode": ("l2", {}),
    "codec.grid": ("midpoints", {}),
    "codec.grid_by_method": ({"end_to_end": "midpoints"}, {}),  # refused: one 2-D grid for every method here
    "codec.softmax_decoder_init": ("zeros", {}),
    "codec.pretrain.steps": (10, {}),
    "codec.pretrain.lr": (0.1, {}),
    "codec.pretrain.batch_size": (64, {}),
    "end_to_end.lambda_pred": (0.5, {}),
    "end_to_end.lambda_kl": ("selected", {}),  # refused: no sweeps at this scale
    "end_to_end.lambda_auto": (0.5, {}),
    "end_to_end.codec_init": ("pretrained", {}),
    "end_to_end.kl_reduction": ("sum", {}),
    "huber_delta": (0.5, {}),
    "device": ("cpu", {}),
    "method_modules": (["targetcodec.objectives"], {}),
    "osv5m_dir": ("/data/elsewhere", {}),
    "datasets.osv5m.code": ("OSV", {}),
    "datasets.osv5m.enabled": (False, {}),
    "datasets.osv5m.path": ("/data/other", {"osv5m_dir": None}),  # the data folder, as osv5m_dir
}
# keys of the schema's sections that take no effect on this stage, and why (documented at the key)
NO_EFFECT = {
    "codec.hard_bins": "2-D targets always take the nearest centroid",
    "datasets.osv5m.source": "what makes the entry this stage's dataset",
}


def _stage_config(*layers) -> dict:
    import copy

    import yaml
    from snakemake.utils import update_config

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    for layer in (STAGE_BASE, *layers):
        update_config(config, copy.deepcopy(layer))
    return config


def _nested(key: str, value) -> dict:
    out = value
    for part in reversed(key.split(".")):
        out = {part: out}
    return out


def _read_config(config: dict):
    """What common.smk does when it reads the config (schema, check_config), then the stage's plan;
    ValueError with the message the run stops with."""
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    from targetcodec.config import check_config, describe_validation_error
    from targetcodec.osv5m.settings import stage_plan

    try:
        validate(config, schema=str(SCHEMA))
    except WorkflowError as e:
        raise ValueError(describe_validation_error(e.__context__)) from None
    check_config(config)
    return stage_plan(config)


def _schema_leaves(schema: dict, prefix: str = "") -> set[str]:
    out = set()
    for name, sub in schema.get("properties", {}).items():
        if sub.get("type") == "object" and sub.get("additionalProperties") is False:
            out |= _schema_leaves(sub, f"{prefix}{name}.")
        else:
            out.add(prefix + name)
    return out


def test_every_key_the_stage_reads_is_listed():
    """A key added to the sections the stage reads must be added to CHANGES (or NO_EFFECT, with its reason)."""
    import yaml

    schema = yaml.safe_load(SCHEMA.read_text())
    props = schema["properties"]
    keys = {
        f"{section}.{leaf}" for section in ("osv5m", "codec", "end_to_end") for leaf in _schema_leaves(props[section])
    }
    keys |= {"huber_delta", "device", "method_modules", "osv5m_dir"}
    rule = next(
        r for r in schema["$defs"]["dataset"]["allOf"] if r["if"]["properties"]["source"].get("const") == "osv5m"
    )
    keys |= {f"datasets.osv5m.{k}" for k in rule["then"]["propertyNames"]["enum"]}
    assert keys == set(CHANGES) | set(NO_EFFECT)


@pytest.mark.parametrize("key", sorted(CHANGES))
@pytest.mark.fault("bad_config")
def test_every_key_changes_the_stage_or_is_refused_by_name(key):
    value, context = CHANGES[key]
    base = _read_config(_stage_config(context))
    try:
        changed = _read_config(_stage_config(context, _nested(key, value)))
    except ValueError as e:
        assert f"'{key}'" in str(e), str(e)
        return
    assert changed != base, f"config key {key!r} changes nothing the stage reads"


@pytest.mark.fault("bad_config")
def test_keys_that_mean_nothing_here_say_so_or_are_refused():
    import yaml

    schema = yaml.safe_load(SCHEMA.read_text())
    assert (
        "2-D targets (the osv5m stage) always take the nearest centroid"
        in (schema["properties"]["codec"]["properties"]["hard_bins"]["description"])
    )
    assert "2-D ones (synthetic_2d, osv5m) always take the nearest centroid" in (REPO / "config.yaml").read_text()
    assert _read_config(_stage_config({"codec": {"hard_bins": "nearest"}})) == _read_config(_stage_config())
    with pytest.raises(ValueError, match="'datasets.osv5m.model': not a key of a dataset of source osv5m"):
        _read_config(_stage_config({"datasets": {"osv5m": {"model": "mlp"}}}))
    with pytest.raises(ValueError, match="'osv5m_dir' .* and 'datasets.osv5m.path' .* name different data folders"):
        _read_config(_stage_config({"datasets": {"osv5m": {"path": "/data/other"}}}))
    assert _read_config(_stage_config({"datasets": {"osv5m": {"path": "/data/osv5m"}}})).root == "/data/osv5m"
    with pytest.raises(
        ValueError, match=r"'osv5m.methods\[1\]': unknown method 'end_to_emd' \(did you mean 'end_to_end'"
    ):
        _read_config(_stage_config({"osv5m": {"methods": ["least_squares", "end_to_emd"]}}))


def _plan_job(cache, out: Path, label: str, *layers) -> dict:
    """A job as the workflow writes it (StagePlan.job) from config.yaml, a small head and ``layers``, run."""
    from targetcodec.train.osv5m import Job, run_job

    small = {
        "osv5m": {
            "head": {"width": 16, "depth": 2, "expansion": 4},
            "batch_size": 128,
            "examples": 128 * 4,
            "warmup_steps": 2,
            "lr": 3e-3,
            "eval_batch_size": 512,
        },
        "codec": {"pretrain": {"steps": 20}},
    }
    plan = _read_config(_stage_config(small, *layers))
    job = plan.job(
        label,
        [0],
        cache=str(cache),
        outputs=[str(out / f"{label}.json")],
        predictions=[str(out / f"{label}.npz")],
        log=str(out / f"{label}.log"),
    )
    return run_job(Job(**json.loads(json.dumps(job))))[0]


@pytest.mark.parametrize(
    "label, key, value",
    [
        ("softmax_least_squares-k9", "codec.softmax_decoder_init", "zeros"),
        ("end_to_end-k9", "end_to_end.codec_init", "pretrained"),
        ("trained_codec-k9", "codec.weight_decay_mode", "l2"),
        ("hard_binning-k9", "codec.hard_bins", "nearest"),
    ],
)
def test_method_settings_take_effect_on_the_results(standin, tmp_path, label, key, value):
    """The keys the stage's own settings mapping used to drop change the numbers; codec.hard_bins
    does not (2-D targets always take the nearest centroid), as its documentation says."""
    _, _, _, cache = standin
    before = _plan_job(cache, tmp_path / "before", label, {"codec": {"weight_decay": 0.1}})
    after = _plan_job(cache, tmp_path / "after", label, {"codec": {"weight_decay": 0.1}}, _nested(key, value))
    if key == "codec.hard_bins":
        assert after["metrics"] == before["metrics"]
    else:
        assert after["metrics"]["test_mae"] != before["metrics"]["test_mae"], key
    if key == "end_to_end.codec_init":
        assert "pre-trained codec" in (tmp_path / "after" / f"{label}.log").read_text()
