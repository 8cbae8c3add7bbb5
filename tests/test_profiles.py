"""What each job asks a scheduler for, and the profiles that pass it on (profiles/slurm, profiles/local-gpu).
No SLURM needed here: dry runs and the profiles' own parsing; tests/test_slurm.py runs them for real."""

import json
import os
import re

import pytest
from snakemake.profiles import ProfileConfigFileParser

from workflow_helpers import REPO, copy_workflow, snakemake

TINY = ["--configfile", "presets/tiny.yaml"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return copy_workflow(tmp_path_factory.mktemp("profiles"), git=False)


def planned_resources(workdir, *args, env=None) -> dict[str, list[dict[str, str]]]:
    """Rule name -> the resources of each of its jobs, as a dry run plans them."""
    proc = snakemake(workdir, "-n", "-F", *args, env=env)
    jobs = {}
    for block in re.split(r"^(?=(?:local)?rule \w+:)", proc.stdout, flags=re.M)[1:]:
        name = re.match(r"(?:local)?rule (\w+):", block)[1]
        line = re.search(r"^\s+resources: (.*)$", block, re.M)
        jobs.setdefault(name, []).append(dict(item.split("=", 1) for item in line[1].split(", ")) if line else {})
    return jobs


@pytest.mark.slow  # runs Snakemake
@pytest.mark.parametrize("config, gpus", [([], "1"), (["training_resources={gpu: 0}"], "0")])
@pytest.mark.parametrize(
    "packs, rules",
    [
        ("pack_size=1", {"train_seed0", "train_seed1", "sweep_lr", "sweep_lambda_kl"}),
        ("sweeps={lr: {job_per: configuration}}", {"sweep_and_train", "sweep_lambda_kl"}),
        (
            "pack_size=null",
            {
                "sweep_and_train_no_k",
                "sweep_and_train_k3",
                "sweep_and_train_k5",
                "sweep_and_train_k7",
                "sweep_lambda_kl",
            },
        ),
    ],
)
def test_training_jobs_alone_ask_for_gpus(workdir, config, gpus, packs, rules):
    """Every rule that trains, however seeds are packed (train_seed0, ..., sweep_and_train, or
    sweep_and_train_k3, ...), asks for
    the configured GPUs and CPUs; no other rule asks for a GPU. No profile needs a list of rule names."""
    jobs = planned_resources(workdir, *TINY, "--config", packs, *config)
    training = {name for name in jobs if name.startswith(("train", "sweep"))}
    assert training == rules
    for name, resources in jobs.items():
        for job in resources:
            if name in training:
                assert (job["gpu"], job["cpus_per_task"], job["runtime"]) == (gpus, "2", "120"), (name, job)
            else:
                assert "gpu" not in job, (name, job)


def parse_profile(name, environ, monkeypatch) -> dict:
    for key in ("SBATCH_PARTITION", "SBATCH_ACCOUNT"):
        monkeypatch.delenv(key, raising=False)
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    with open(REPO / "profiles" / name / "config.yaml") as f:
        return ProfileConfigFileParser().parse(f)


def test_slurm_profile_takes_partition_and_account_from_the_environment(monkeypatch):
    plain = parse_profile("slurm", {}, monkeypatch)
    assert plain["executor"] == "slurm" and plain["scheduler"] == "greedy"
    assert not any(r.startswith(("slurm_partition", "slurm_account")) for r in plain["default-resources"])
    site = parse_profile("slurm", {"SBATCH_PARTITION": "gpu-a100", "SBATCH_ACCOUNT": "proj42"}, monkeypatch)
    assert {"slurm_partition='gpu-a100'", "slurm_account='proj42'"} <= set(site["default-resources"])
    assert "set-resources" not in site  # rules ask for their own GPUs: a profile layered on top may set it


@pytest.mark.slow  # runs Snakemake
def test_a_profile_extends_the_slurm_profile_without_copying_it(workdir, tmp_path, monkeypatch):
    """How a later profile (the OSV5M stage: long jobs, several GPUs, requeue) builds on profiles/slurm:
    `--profile profiles/slurm --profile other` keeps every key of the first that the second leaves alone."""
    monkeypatch.setenv("SBATCH_PARTITION", "batch")
    other = tmp_path / "long-jobs"
    other.mkdir()
    (other / "config.yaml").write_text(
        "slurm-requeue: true\nset-resources:\n  sweep_and_train_k3: {runtime: 2880, gpu: 2}\n"
    )
    jobs = planned_resources(workdir, *TINY, "--profile", "profiles/slurm", "--profile", str(other))
    for job in jobs["sweep_and_train_k3"]:
        assert (job["runtime"], job["gpu"], job["mem_mb"], job["slurm_partition"]) == ("2880", "2", "4000", "batch")
    for job in jobs["prepare"]:
        assert (job["runtime"], job["slurm_partition"]) == ("30", "batch") and "gpu" not in job


@pytest.mark.slow  # runs Snakemake
def test_local_gpu_profile_needs_a_gpu(workdir):
    proc = snakemake(
        workdir,
        "-n",
        "--profile",
        "profiles/local-gpu",
        *TINY,
        check=False,
        env=dict(os.environ, CUDA_VISIBLE_DEVICES=""),
    )
    assert proc.returncode != 0
    assert "profiles/local-gpu: no GPU is visible" in proc.stderr


@pytest.mark.slow
def test_local_gpu_profile_gives_each_training_job_a_gpu_of_its_own(tmp_path):
    """Two (made-up) GPUs: Snakemake may run two training jobs at once, and each job narrows
    CUDA_VISIBLE_DEVICES to the GPU it claimed from the pool."""
    workdir = copy_workflow(tmp_path / "local-gpu", git=False)
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="0,1", TARGETCODEC_GPU_LOCKS=str(tmp_path / "locks"))
    groups = {"least_squares": "no_k", "hard_binning-k3": "k3", "soft_binning-k5": "k5"}
    targets = [f"results/tiny/runs/diabetes/{c}/seed0.json" for c in groups]
    proc = snakemake(workdir, *targets, "--profile", "profiles/local-gpu", *TINY, env=env)
    assert re.search(r"Provided resources: gpu=[^\n]*\b2\b", proc.stdout + proc.stderr)
    for configuration, group in groups.items():
        record = json.loads((workdir / f"results/tiny/runs/diabetes/{configuration}/seed0.json").read_text())
        assert record["provenance"]["hardware"]["cuda_visible_devices"] in ("0", "1")
        log = (workdir / f"results/tiny/logs/sweep_and_train/diabetes/{group}.log").read_text()
        assert re.search(r"GPU pool: this job uses GPU [01] of 0,1", log), log
    assert (tmp_path / "locks" / "gpu-0.lock").exists()  # the pool TARGETCODEC_GPU_LOCKS names
