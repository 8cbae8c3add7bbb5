"""The grid benchmark's account of where a job's time went, read from a real job log."""

import importlib.util

import pytest

from targetcodec.joblog import job_log
from workflow_helpers import REPO


def load_grid_benchmark():
    spec = importlib.util.spec_from_file_location("grid_benchmark", REPO / "benchmarks" / "grid.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_job_log_states_its_start_up_and_its_time(tmp_path):
    """job_log's first line is the process's start-up (python, imports), to the millisecond."""
    grid = load_grid_benchmark()
    path = tmp_path / "job.log"
    with job_log(path) as log:
        log("working")
    lines = path.read_text().splitlines()
    assert grid.STARTUP.search(lines[0]) and float(grid.STARTUP.search(lines[0]).group(1)) > 0
    assert lines[-1].endswith(" s after start-up") and "job done" in lines[-1]
    assert all(grid._time(line) is not None and "." in line.split()[1] for line in lines)


def test_the_breakdown_of_a_training_job(tmp_path):
    """Hand-written log of a 10 s job: 2.5 s start-up, 1 s of loading, the pack's own timing line
    (0.5 + 5 + 0.25 s), 0.5 s of writing; the rest (Snakemake's own 0.25 s) is left over."""
    log = tmp_path / "job.log"
    log.write_text(
        "2026-12-01 04:00:00.000 start-up: 2.500 s (process start to this line: ...)\n"
        "2026-12-01 04:00:01.000 device: cpu\n"
        "2026-12-01 04:00:06.750 timing: set-up 0.500 s, training 5.000 s, evaluation 0.250 s; 20 run-epochs trained of 2 x 10\n"
        "2026-12-01 04:00:07.250 job done: 7.250 s after start-up\n"
    )
    part = load_grid_benchmark().job_breakdown(log, wall=10.0)
    assert part == pytest.approx(
        {
            "jobs": 1,
            "wall": 10.0,
            "start-up": 2.5,
            "data loading": 1.0,
            "codec pre-training": 0.0,
            "set-up": 0.5,
            "training": 5.0,
            "evaluation": 0.25,
            "writing": 0.5,
            "rest of the job": 0.25,
        }
    )


def test_the_breakdown_of_a_sweep_and_train_job(tmp_path):
    """Two packs in one job (the sweep's, then the seeds'): both timing lines count, and the time
    between them (the sweep's table and selection) is writing."""
    log = tmp_path / "job.log"
    log.write_text(
        "2026-12-01 04:00:00.000 start-up: 2.000 s (process start to this line: ...)\n"
        "2026-12-01 04:00:04.000 timing: set-up 0.500 s, training 2.500 s, evaluation 0.250 s; 12 run-epochs\n"
        "2026-12-01 04:00:04.500 selected lr = 0.001\n"
        "2026-12-01 04:00:07.500 timing: set-up 0.250 s, training 2.500 s, evaluation 0.250 s; 10 run-epochs\n"
        "2026-12-01 04:00:08.000 job done: 8.000 s after start-up\n"
    )
    part = load_grid_benchmark().job_breakdown(log, wall=11.0)
    assert part == pytest.approx(
        {
            "jobs": 1,
            "wall": 11.0,
            "start-up": 2.0,
            "data loading": 0.75,  # 04:00:04 less the first pack's 3.25 s
            "codec pre-training": 0.0,
            "set-up": 0.75,
            "training": 5.0,
            "evaluation": 0.5,
            "writing": 1.0,  # 8 s logged - 0.75 - 0.75 - 5 - 0.5
            "rest of the job": 1.0,
        }
    )


def test_the_breakdown_of_a_job_that_pretrains_its_codec_first(tmp_path):
    """A job of one k pre-trains its codec (eq. 7) before its first pack: that time is codec
    pre-training, not data loading."""
    log = tmp_path / "job.log"
    log.write_text(
        "2026-12-01 04:00:00.000 start-up: 2.000 s (process start to this line: ...)\n"
        "2026-12-01 04:00:00.500 pretrain step 1/200: eq.(7) loss 0.001\n"
        "2026-12-01 04:00:03.000 codec k = 5: auto-encoding error (eq. 6) 0.001 -> 0.0005, mean entropy 1 -> 0.9\n"
        "2026-12-01 04:00:06.500 timing: set-up 0.250 s, training 2.750 s, evaluation 0.250 s; 10 run-epochs\n"
        "2026-12-01 04:00:07.000 job done: 7.000 s after start-up\n"
    )
    part = load_grid_benchmark().job_breakdown(log, wall=9.5)
    assert part["codec pre-training"] == pytest.approx(3.0)
    assert part["data loading"] == pytest.approx(0.25)  # 6.5 - 3.25 (the pack) - 3.0 (the codec)
    assert part["writing"] == pytest.approx(0.5) and part["rest of the job"] == pytest.approx(0.5)


def load_pack_speed_benchmark():
    spec = importlib.util.spec_from_file_location("pack_speed", REPO / "benchmarks" / "pack_speed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_cnn_flop_count_follows_the_layer_shapes():
    """A 2 x 8 x 8 image, convolutions 2 -> 3 -> 4, one hidden layer of 5, one output: counted by
    hand. Backward: twice the forward products, less the first layer's input gradient."""
    from targetcodec import Architecture

    arch = Architecture(kind="cnn", conv_channels=(3, 4), fc_width=5, fc_depth=1)
    products = [8 * 8 * 3 * 2 * 9, 4 * 4 * 4 * 3 * 9, (4 * 2 * 2) * 5, 5 * 1]
    flops = load_pack_speed_benchmark().network_flops(arch, (2, 8, 8), 1)
    assert flops["forward"] == 2 * sum(products)
    assert flops["forward_backward"] == 2 * sum(products) + 2 * (2 * sum(products) - products[0])


def test_the_cnn_benchmark_measures_a_pack_and_projects_the_full_run():
    bench = load_pack_speed_benchmark()
    data = bench.images_like_retinamnist(train=16, val=8, test=8)
    result = bench.cnn_speeds(runs=(1, 2), batch_size=8, repeats=1, data=data)
    assert [row["runs"] for row in result["rows"]] == [1, 2]
    assert all(row["images_per_s"] > 0 and 0 < row["flop_fraction"] for row in result["rows"])
    assert result["projected_full_run_s"] is None  # no 10- and 12-run packs measured
    assert bench.projected_full_run({12: 6.0, 10: 5.0}) == 7 * 100 * 11.0 / 2
    assert "| 2 |" in bench.cnn_table(result)
