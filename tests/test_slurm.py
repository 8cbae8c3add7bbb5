"""The workflow on a real SLURM, exactly as docs/slurm.md runs it: a single-node cluster with accounting
(slurmdbd, MariaDB) and two fake GPUs, brought up by tests/slurm/cluster.sh. Skipped, with the reason,
where that script cannot run (not root, no apt-get) or when TARGETCODEC_SLURM=skip; with
TARGETCODEC_SLURM=require (CI) a cluster that cannot start fails the tests instead."""

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from workflow_helpers import REPO, copy_workflow, failed_job_logs, job_counts, snakemake

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

CLUSTER = REPO / "tests" / "slurm" / "cluster.sh"
STATE = Path(os.environ.get("TARGETCODEC_SLURM_DIR", "/tmp/targetcodec-slurm"))
PARTITION, ACCOUNT = "batch", "testproj"  # made by cluster.sh; batch is not the default partition
# The plugin first asks for job states 40 s after a submission, then every 10 s, plus 10 s per quiet
# round; on this idle local cluster, every second.
FAST_POLLING = ["--slurm-init-seconds-before-status-checks", "1", "--seconds-between-status-checks", "1"]
SKIP_CLUSTER = 77  # cluster.sh: this machine cannot run it


@pytest.fixture(scope="session")
def slurm_env():
    """The environment of a SLURM user of this cluster; starts the cluster unless it runs already
    (and then leaves it running), stops what it started."""
    if os.environ.get("TARGETCODEC_SLURM") == "skip":
        pytest.skip("TARGETCODEC_SLURM=skip")
    running = subprocess.run([CLUSTER, "status"], capture_output=True).returncode == 0
    if not running:
        start = subprocess.run([CLUSTER, "start"], capture_output=True, text=True, timeout=600)
        if start.returncode == SKIP_CLUSTER and os.environ.get("TARGETCODEC_SLURM") != "require":
            pytest.skip(start.stderr.strip().splitlines()[-1])
        assert start.returncode == 0, f"tests/slurm/cluster.sh start failed:\n{start.stdout}\n{start.stderr}"
    env = dict(
        os.environ,
        SLURM_CONF=str(STATE / "etc" / "slurm.conf"),
        SBATCH_PARTITION=PARTITION,
        SBATCH_ACCOUNT=ACCOUNT,
        PYTHONPATH=str(REPO),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    )  # jobs inherit it
    yield env
    if not running:
        subprocess.run([CLUSTER, "stop"], timeout=300, check=True)


def snakemake_command(*args, limit: int) -> list[str]:
    """Snakemake with the SLURM profile under a hard limit: TERM (it cancels its jobs), KILL 10 s later
    (it can hang, deaf to TERM, when sacct fails)."""
    return [
        "timeout",
        "-k",
        "10",
        "-s",
        "TERM",
        str(limit),
        sys.executable,
        "-m",
        "snakemake",
        "--profile",
        "profiles/slurm",
        *FAST_POLLING,
        *args,
    ]


def slurm_snakemake(workdir, env, *args, limit=900) -> subprocess.CompletedProcess:
    proc = subprocess.run(snakemake_command(*args, limit=limit), cwd=workdir, env=env, capture_output=True, text=True)
    assert proc.returncode not in (124, 137), f"Snakemake ran past {limit} s:\n{proc.stderr[-6000:]}"
    return proc


def sacct(env, *args) -> list[list[str]]:
    since = (dt.datetime.now() - dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    out = subprocess.run(
        ["sacct", "--parsable2", "--noheader", "--starttime", since, *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return [line.split("|") for line in out.splitlines() if line]


def rule_of(comment: str) -> str:
    """The rule of a job the plugin submitted, from its SLURM comment ("rule_<rule>_wildcards_...")."""
    return comment.removeprefix("rule_").split("_wildcards_")[0]


@pytest.fixture(scope="module")
def tiny_slurm_run(slurm_env, tmp_path_factory):
    workdir = copy_workflow(tmp_path_factory.mktemp("tiny-slurm"))
    started = time.perf_counter()
    proc = slurm_snakemake(workdir, slurm_env, "--configfile", "presets/tiny.yaml")
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-8000:] + failed_job_logs(workdir, output)
    print(f"tiny preset through SLURM: {time.perf_counter() - started:.0f} s")
    run_id = re.search(r"SLURM run ID: (\S+)", output)[1]
    jobs = [
        dict(zip(["id", "state", "partition", "account", "tres", "comment"], row))
        for row in sacct(
            slurm_env, "-X", "--name", run_id, "--format=JobIDRaw,State,Partition,Account,AllocTRES,Comment"
        )
    ]
    return workdir, output, jobs


def test_every_job_went_through_sbatch(tiny_slurm_run):
    _, output, jobs = tiny_slurm_run
    local = set(re.findall(r"^localrule (\w+):", output, re.M))  # run on the submit node, by design
    assert "all" in local
    expected = {rule: count for rule, count in job_counts(output).items() if rule not in local}
    assert Counter(rule_of(job["comment"]) for job in jobs) == expected
    assert {job["state"] for job in jobs} == {"COMPLETED"}
    assert {(job["partition"], job["account"]) for job in jobs} == {(PARTITION, ACCOUNT)}  # SBATCH_PARTITION/ACCOUNT


def test_training_jobs_and_only_they_were_given_a_gpu(tiny_slurm_run):
    workdir, _, jobs = tiny_slurm_run
    for job in jobs:
        training = rule_of(job["comment"]).startswith(("train", "sweep"))
        assert ("gres/gpu=1" in job["tres"]) == training, job
        assert ("cpu=2" in job["tres"]) == training, job  # training_resources: cpus_per_task 2
    record = json.loads((workdir / "results/tiny/runs/diabetes/end_to_end-k3/seed0.json").read_text())
    hardware = record["provenance"]["hardware"]
    assert hardware["slurm_job_id"] and hardware["cuda_visible_devices"] in ("0", "1")  # SLURM's GPU, no pool
    log = (workdir / "results/tiny/logs/sweep_and_train/diabetes/k3.log").read_text()
    assert f"CUDA_VISIBLE_DEVICES={hardware['cuda_visible_devices']}" in log and "GPU pool" not in log


def test_results_equal_a_local_run(tiny_slurm_run, tiny_run):
    workdir, _, _ = tiny_slurm_run
    _, local = tiny_run
    runs = sorted(p.relative_to(local) for p in (local / "runs").rglob("*.json"))
    assert len(runs) == 2 * 13 * 2  # datasets x (12 configurations + 1 of the k sweep) x seeds
    for path in runs:
        on_slurm, here = (json.loads((root / path).read_text()) for root in (workdir / "results/tiny", local))
        for key in ("metrics", "val_mae_history", "epochs_trained", "best_epoch", "hyperparameters", "settings"):
            assert on_slurm[key] == here[key], (path, key)
    for table in ("table3_mae", "table4_rmse", "table5_r2"):
        assert (workdir / f"results/tiny/tables/{table}.md").read_text() == (local / f"tables/{table}.md").read_text()


def test_a_failing_job_fails_the_workflow_and_names_its_logs(slurm_env, tmp_path):
    workdir = copy_workflow(tmp_path / "failing")
    # a file without the target column: the DAG is fine, the prepare job fails on the cluster
    (workdir / "broken.csv").write_text("a,b\n" + "".join(f"{i},{i % 7}\n" for i in range(50)))
    (workdir / "broken.yaml").write_text(
        "datasets:\n  broken: {source: file, path: broken.csv, target: no_such_column}\nrun_datasets: [broken]\n"
    )
    proc = slurm_snakemake(
        workdir,
        slurm_env,
        "results/tiny/prepared/broken.npz",
        "--configfile",
        "presets/tiny.yaml",
        "broken.yaml",
        limit=300,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "Error in rule prepare" in output
    slurm_log = re.search(r"\S*/\.snakemake/slurm_logs/rule_prepare/broken/\d+\.log", output)
    assert slurm_log, output[-4000:]
    rule_log = workdir / "results/tiny/logs/prepare/broken.log"
    assert "results/tiny/logs/prepare/broken.log" in output
    assert "no_such_column" in Path(slurm_log[0]).read_text()  # the job's error is in the log named
    assert "FAILED" in rule_log.read_text() and "no_such_column" in rule_log.read_text()
    assert not (workdir / "results/tiny/prepared/broken.npz").exists()


REQUEUE_CONFIG = """\
results: results/requeue
run_datasets: [synthetic_2d]
datasets:
  synthetic_2d: {n: 3000}
methods: [least_squares]
training:
  mlp: {max_epochs: 100, patience: 100, batch_size: 16}   # about 10 s: time to requeue it mid-run
sweeps: {lr: {enabled: false}, lambda_kl: {enabled: false}, k: {enabled: false}}
"""


def test_a_requeued_training_job_resumes_from_its_checkpoint(slurm_env, tmp_path):
    """What preemption does (scontrol requeue): the job is killed and runs again from its last
    checkpoint; no result file exists before it completes, and the results equal an uninterrupted run."""
    workdir = copy_workflow(tmp_path / "requeue")
    (workdir / "requeue.yaml").write_text(REQUEUE_CONFIG)
    config = ["--configfile", "presets/tiny.yaml", "requeue.yaml"]
    target = "results/requeue/runs/synthetic_2d/least_squares/seed1.json"
    runs = (workdir / target).parent
    checkpoint = workdir / "results/requeue/checkpoints/synthetic_2d/least_squares/seeds0-1.ckpt"
    # The uninterrupted run, locally; its data stay for the SLURM run, which then has one job: training.
    snakemake(workdir, target, "--cores", "2", *config)
    uninterrupted = {p.name: json.loads(p.read_text()) for p in runs.glob("seed*.json")}
    shutil.rmtree(runs)

    run = subprocess.Popen(
        snakemake_command(target, *config, limit=600),
        cwd=workdir,
        env=slurm_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until(lambda: checkpoint.exists() or run.poll() is not None, 600)
        assert run.poll() is None, f"the workflow ended before the job saved a checkpoint:\n{run.stdout.read()}"
        assert not runs.exists() or not list(runs.iterdir())  # nothing counts as done yet
        squeue = subprocess.run(
            ["squeue", "-h", "-o", "%i|%k"], env=slurm_env, capture_output=True, text=True, timeout=60
        ).stdout
        job = next(line.split("|")[0] for line in squeue.splitlines() if rule_of(line.split("|")[1]) == "train")
        subprocess.run(["scontrol", "requeue", job], env=slurm_env, check=True, timeout=60)
        # SLURM holds a requeued job back for two minutes; let it start again at once.
        wait_until(lambda: job_state(slurm_env, job) == "PENDING", 60)
        subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], env=slurm_env, check=True, timeout=60)
        output, _ = run.communicate(timeout=600)
    finally:
        if run.poll() is None:  # a failed assertion above: stop Snakemake (timeout passes TERM on), then kill
            run.terminate()
            try:
                run.wait(timeout=60)
            except subprocess.TimeoutExpired:
                run.kill()
    assert run.returncode == 0, output[-6000:] + failed_job_logs(workdir, output)
    log = (workdir / "results/requeue/logs/train/synthetic_2d/least_squares/seeds0-1.log").read_text()
    resumed = re.search(r"resumed from checkpoint \S+ after epoch (\d+)", log)
    assert resumed and int(resumed[1]) >= 10, log[-3000:]
    states = [row[1] for row in sacct(slurm_env, "-X", "--duplicates", "-j", job, "--format=JobIDRaw,State")]
    assert states == ["REQUEUED", "COMPLETED"]
    assert not checkpoint.exists()
    for name, expected in uninterrupted.items():
        resumed_run = json.loads((runs / name).read_text())
        assert resumed_run["provenance"]["hardware"]["slurm_job_id"] == job
        assert resumed_run["metrics"] == expected["metrics"]
        assert resumed_run["val_mae_history"] == expected["val_mae_history"]


def job_state(env, job: str) -> str:
    return subprocess.run(
        ["squeue", "-h", "-j", job, "-o", "%T"], env=env, capture_output=True, text=True, timeout=60
    ).stdout.strip()


def wait_until(condition, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting after {seconds} s"
        time.sleep(0.1)


def test_the_osv5m_stage_runs_through_its_profile(slurm_env, tmp_path):
    """profiles/osv5m (profiles/slurm plus the OSV5M jobs' resources) on a stand-in: every job through
    sbatch, the training jobs with the config's GPU and the profile's CPUs, Table 2 written."""
    from targetcodec.data.osv5m_standin import write_standin

    data = write_standin(tmp_path / "standin", "wds", train=600, test=100, dim=16, shard_size=300)
    workdir = copy_workflow(tmp_path / "wf")
    env = dict(
        slurm_env,
        OSV5M_TRAIN_MEM_MB="500",
        OSV5M_TRAIN_CPUS="1",
        OSV5M_TRAIN_RUNTIME="20",
        OSV5M_PREPARE_MEM_MB="500",
        OSV5M_PREPARE_RUNTIME="20",
    )
    command = [
        "timeout",
        "-k",
        "10",
        "-s",
        "TERM",
        "600",
        sys.executable,
        "-m",
        "snakemake",
        "--profile",
        "profiles/osv5m",
        *FAST_POLLING,
        "--configfile",
        "presets/osv5m_standin.yaml",
        "--config",
        f"osv5m_dir={data}",
        "osv5m={seeds: 2, methods: [least_squares, end_to_end], head: {width: 8, depth: 1, expansion: 2}, "
        "batch_size: 64, examples: 1280, warmup_steps: 5, lr: 0.003, training_resources: {gpu: 1, cpus_per_task: 1}}",
    ]
    proc = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-8000:] + failed_job_logs(workdir, output)
    run_id = re.search(r"SLURM run ID: (\S+)", output)[1]
    jobs = [
        dict(zip(["state", "tres", "comment", "timelimit"], row))
        for row in sacct(slurm_env, "-X", "--name", run_id, "--format=State,AllocTRES,Comment,Timelimit")
    ]
    rules = Counter(rule_of(job["comment"]) for job in jobs)
    assert rules == {"osv5m_prepare": 1, "osv5m_train": 2, "osv5m_report": 1}, rules
    assert {job["state"] for job in jobs} == {"COMPLETED"}
    for job in jobs:
        training = rule_of(job["comment"]) == "osv5m_train"
        assert ("gres/gpu=1" in job["tres"]) == training, job
        if rule_of(job["comment"]) != "osv5m_report":
            assert job["timelimit"] == "00:20:00", job  # the profile's set-resources, from the site variables
    assert (workdir / "results/osv5m_standin/tables/table2_osv5m.md").exists()
