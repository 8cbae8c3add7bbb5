"""benchmarks/device.py, the one command for a GPU machine, run on the CPU at its smallest sizes:
every part measures and the JSON and Markdown say what, so that its first run on a GPU works."""

import importlib.util
import json
import sys

import pytest
import torch

from workflow_helpers import REPO


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny_benchmark(tmp_path_factory):
    out = tmp_path_factory.mktemp("device")
    load("device").main(["--out", str(out), "--device", "cpu", "--size", "tiny"])
    return json.loads((out / "device.json").read_text()), (out / "device.md").read_text()


def test_every_part_measures_on_the_cpu(tiny_benchmark):
    record, _ = tiny_benchmark
    parts = record["parts"]
    assert list(parts) == ["pack", "grid", "osv5m", "ddp"]
    assert not [name for name, part in parts.items() if "error" in part or "skipped" in part]
    assert record["machine"]["device"] == "cpu" and record["machine"]["torch"]

    pack = parts["pack"]["result"]["least_squares"]["rows"]
    assert [row["runs"] for row in pack] == [1, 1, 2]  # the naive loop, then packs of 1 and 2
    assert all(row["seed_samples_per_s"] > 0 for row in pack)

    osv = parts["osv5m"]["result"]
    assert [(r["parallel"], r["runs"]) for r in osv] == [("pack", 1), ("pack", 2)]
    ddp = parts["ddp"]["result"]
    assert ddp["parallel"] == "ddp over 2 process(es)" and ddp["seconds_per_step"] > 0

    grid = parts["grid"]["result"]
    # diabetes, least squares and trained codec at k = 5: 1 seed each, 2 learning rates x 1 sweep seed
    assert (grid["reported_runs"], grid["sweep_runs"], grid["training_jobs"]) == (2, 4, 2)
    assert grid["snakemake"] is False and grid["stand_ins"] == []
    jobs = grid["breakdown"]["sweep-and-train jobs"]
    assert jobs["jobs"] == 2 and jobs["training"] > 0 and jobs["start-up"] > 0
    assert grid["gpu"] is None and "torch sees no GPU" in grid["gpu_unavailable"]


def test_the_summary_says_what_was_measured_and_where(tiny_benchmark):
    record, md = tiny_benchmark
    for heading in ("## Pack speed", "## Grid slice", "## OpenStreetView-5M head step, packs", "step, DDP"):
        assert heading in md
    assert "| pack of 2 | 2 |" in md and "| ddp over 2 process(es) | 1 | fp32 | 64 |" in md
    assert "2 reported + 4 sweep runs" in md and "GPU utilisation: unavailable" in md
    assert record["machine"]["date"][:10] in md and "sizes `tiny`" in md


def test_a_failing_part_is_recorded_and_the_others_still_run(tmp_path, monkeypatch):
    device = load("device")
    monkeypatch.setattr(device, "measure_osv5m", lambda *a: (_ for _ in ()).throw(RuntimeError("out of memory")))
    with pytest.raises(SystemExit, match="failed: osv5m"):
        device.main(["--out", str(tmp_path), "--device", "cpu", "--size", "tiny", "--parts", "osv5m", "pack"])
    record = json.loads((tmp_path / "device.json").read_text())
    assert record["parts"]["osv5m"]["error"] == "RuntimeError: out of memory"
    assert record["parts"]["pack"]["result"]["least_squares"]["rows"]
    assert "FAILED after" in (tmp_path / "device.md").read_text()


def test_a_dataset_missing_from_the_data_cache_becomes_a_stand_in_of_its_shape(tmp_path):
    grid = load("grid")
    sys.path.insert(0, str(REPO))
    config = {
        "data_cache": str(tmp_path),
        "run_datasets": ["cpu_act", "diabetes"],
        "datasets": {
            "cpu_act": {"code": "CA", "source": "openml", "id": 44132, "target": "usr"},
            "diabetes": {"code": "DB", "source": "sklearn", "name": "diabetes", "target": "target"},
        },
    }
    assert grid.slice_datasets(config) == ["cpu_act (8,192 x 21)"]
    assert config["datasets"]["cpu_act"] | {"seed": 0} == {
        "code": "CA",
        "source": "synthetic",
        "n": 8192,
        "features": 21,
        "targets": 1,
        "noise": 0.05,
        "seed": 0,
    }
    assert config["datasets"]["diabetes"]["source"] == "sklearn"  # bundled: needs no cache


def test_a_pack_the_gpu_has_no_memory_for_is_recorded_and_the_others_measure(tmp_path, monkeypatch):
    device = load("device")
    real = device.osv5m_speed.train_speed

    def no_memory_for_two(dev, runs, **kwargs):
        if runs == 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB")
        return real(dev, runs, **kwargs)

    monkeypatch.setattr(device.osv5m_speed, "train_speed", no_memory_for_two)
    device.main(["--out", str(tmp_path), "--device", "cpu", "--size", "tiny", "--parts", "osv5m"])
    rows = json.loads((tmp_path / "device.json").read_text())["parts"]["osv5m"]["result"]
    assert rows[0]["seconds_per_step"] > 0 and "Tried to allocate 80.00 GiB" in rows[1]["error"]
    assert "| pack | 2 | fp32 | 64 | CUDA out of memory." in (tmp_path / "device.md").read_text()
