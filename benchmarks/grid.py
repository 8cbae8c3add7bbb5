"""The grid benchmark: a fixed slice of the paper's grid through Snakemake, timed, with where the time went.

    .venv/bin/python benchmarks/grid.py                                   # this working tree, small slice
    .venv/bin/python benchmarks/grid.py --commits main HEAD               # two commits side by side
    .venv/bin/python benchmarks/grid.py --size paper --cores 8            # 10 seeds, the full lr sweep (GPU)

The slice: two datasets (``--datasets``, read from ``--data-cache``, default ../shared/data), all 17
configurations of Tables 3-5 (7 methods, k = 5, 15, 25), the learning-rate sweep, no lambda_KL or k
sweep, up to the aggregated ``metrics.parquet`` (``--reports`` adds the tables and figures). ``--size small`` (the default, for 2 shared CPU cores) trains 2 seeds
for at most 10 epochs (patience 5), sweeps 2 learning rates with 1 sweep seed and pre-trains codecs
for 200 steps; ``--size paper`` trains 10 seeds
with config.yaml's epochs and the full 4-value sweep with 3 sweep seeds. Any of these can be
overridden (``--seeds``, ``--epochs``, ``--patience``, ``--lr-grid``, ``--sweep-seeds``).

Each commit is checked out as a git worktree under ``--out`` (outside the repository) and run in
turn (``--parallel``: at the same time) with the same Python environment, its own code first on PYTHONPATH; the working tree itself is
"WORKTREE". Printed per commit: wall time, runs per second (reported and sweep runs), and where the
job time went, summed over jobs, from Snakemake's benchmark files and the jobs' own logs:

- start-up: process start to the job's first log line (Python, imports, Snakemake's script preamble),
- data loading: first log line to the pack's set-up (data, codec, device, settings),
- codec pre-training: a job of one k pre-training its codec (eq. 7) before its first pack,
- set-up, training, evaluation: the pack's own ``timing:`` line (training includes validation),
- writing: the pack's end to the job's last log line (result files),
- other jobs: data preparation, codec pre-training and the reports, from their benchmark files.

Logs of commits from before these timing lines have second-resolution timestamps only: there,
start-up is the benchmark file's wall minus the log's span, and set-up, evaluation and writing
are left in "rest of the job". GPU utilisation is sampled every 0.5 s (nvidia-smi, else torch's
NVML reading; recorded as unavailable where neither answers). Also timed: a dry run (``snakemake -n``)
of the full grid of config.yaml.

``--without-snakemake`` (the default where Snakemake is not installed, e.g. a bare GPU machine) runs
the same jobs, one process each as Snakemake would start them, ``--jobs`` at a time: the data
preparation, then per dataset and k the job of rule ``sweep_and_train_<k>`` (its codec, then its
configurations' sweeps and runs), with the same log and benchmark files. A dataset missing from the
data cache is replaced by a synthetic table of its shape (Table 1's rows and features): the speed is
that of the real one, the numbers are not.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SIZES = {
    "small": {
        "seeds": 2,
        "epochs": 10,
        "patience": 5,
        "lr_grid": [1.0e-3, 3.0e-3],
        "sweep_seeds": 1,
        "pretrain_steps": 200,
    },
    "paper": {
        "seeds": 10,
        "epochs": None,
        "patience": None,
        "lr_grid": [3.0e-4, 1.0e-3, 3.0e-3, 1.0e-2],
        "sweep_seeds": 3,
        "pretrain_steps": None,
    },
}
# Synthetic stand-ins for datasets missing from the data cache: (rows, features) of Table 1
STAND_INS = {
    "wine_quality": (6_497, 7),
    "ailerons": (13_750, 33),
    "bike_sharing": (17_379, 6),
    "superconductivity": (21_263, 79),
    "elevators": (16_599, 16),
    "cpu_act": (8_192, 21),
    "diamonds": (53_940, 6),
}
# the training rules' log folders and how the report names their jobs
JOB_GROUPS = {"train": "training jobs", "sweep": "sweep jobs", "sweep_and_train": "sweep-and-train jobs"}
TIMESTAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)(?:[.,](\d{3}))? ")
STARTUP = re.compile(r"start-up: ([\d.]+) s")
PACK_TIMING = re.compile(r"timing: set-up ([\d.]+) s, training ([\d.]+) s, evaluation ([\d.]+) s")
TRAINING_FINISHED = re.compile(r"training finished after .*?([\d.]+) s$")
CODEC_DONE = re.compile(r"codec k = \d+: auto-encoding error")  # a job of one k pre-trains its codec first


def slice_config(args, results: Path) -> dict:
    size = SIZES[args.size]
    pick = lambda name: getattr(args, name) if getattr(args, name) is not None else size[name]  # noqa: E731
    training = {}
    if pick("epochs") is not None:
        training["max_epochs"] = pick("epochs")
    if pick("patience") is not None:
        training["patience"] = pick("patience")
    config = {
        "results": str(results),
        "data_cache": str(Path(args.data_cache).resolve()),
        "run_datasets": list(args.datasets),
        "seeds": pick("seeds"),
        **({"methods": list(args.methods)} if getattr(args, "methods", None) else {}),
        **({"k_values": list(args.k_values)} if getattr(args, "k_values", None) else {}),
        "sweeps": {
            "lr": {"enabled": True, "grid": list(pick("lr_grid")), "seeds": pick("sweep_seeds")},
            "lambda_kl": {"enabled": False},
            "lambda_auto": {"enabled": False},
            "k": {"enabled": False},
        },
    }
    if training:
        config["training"] = {"mlp": dict(training), "cnn": dict(training)}
    # Baseline 4's decoder on the grid: from config.yaml's initialisation (linear) it needs more than
    # the small slice's 10 epochs to leave the training mean, so all its runs would fail, and commits
    # from before failed learning-rate sweeps went on would stop there. The speed is the same.
    config["codec"] = {"softmax_decoder_init": "grid"}
    if pick("pretrain_steps") is not None:
        config["codec"]["pretrain"] = {"steps": pick("pretrain_steps")}
    return config


def checkout(commit: str, out: Path) -> tuple[Path, str]:
    """A git worktree of ``commit`` under ``out`` (made once), or the working tree itself."""
    if commit == "WORKTREE":
        return REPO, "WORKTREE"
    sha = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", commit], check=True, capture_output=True, text=True
    ).stdout.strip()
    tree = out / f"tree-{sha}"
    if not tree.exists():
        # forget worktrees whose folders were deleted (an earlier --out removed by hand)
        subprocess.run(["git", "-C", str(REPO), "worktree", "prune"], check=True)
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), sha], check=True, capture_output=True
        )
    return tree, sha


class GpuSampler:
    """GPU utilisation every 0.5 s in a background thread: nvidia-smi's, else torch's NVML reading
    (torch.cuda.utilization); ``unavailable`` says why there is none."""

    def __init__(self):
        self.samples: list[tuple[float, float | None]] = []
        self.process = None
        self.unavailable = None
        self._stop = threading.Event()
        self._thread = None

    def __enter__(self):
        if shutil.which("nvidia-smi"):
            self.process = subprocess.Popen(
                [
                    "nvidia-smi",
                    "--query-gpu=utilization.gpu,memory.used",
                    "--format=csv,noheader,nounits",
                    "-lms",
                    "500",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            self._thread = threading.Thread(target=self._read, daemon=True)
        else:
            self.unavailable = self._torch_unavailable()
            if self.unavailable is None:
                self._thread = threading.Thread(target=self._poll_torch, daemon=True)
        if self._thread is not None:
            self._thread.start()
        return self

    @staticmethod
    def _torch_unavailable() -> str | None:
        try:
            import torch

            if not torch.cuda.is_available():
                return "no nvidia-smi, and torch sees no GPU"
            torch.cuda.utilization(0)  # NVML through pynvml, which may be missing
        except Exception as e:
            return f"no nvidia-smi, and torch.cuda.utilization failed: {type(e).__name__}: {e}"
        return None

    def _read(self):
        for line in self.process.stdout:
            try:
                util, mem = (float(x) for x in line.split(","))
                self.samples.append((util, mem))
            except ValueError:
                pass

    def _poll_torch(self):
        import torch

        while not self._stop.wait(0.5):
            try:
                self.samples.append((float(torch.cuda.utilization(0)), None))
            except Exception:
                return

    def __exit__(self, *exc):
        self._stop.set()
        if self.process is not None:
            self.process.terminate()
            self.process.wait()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def summary(self) -> dict | None:
        if not self.samples:
            return None
        util = [u for u, _ in self.samples]
        memory = [m for _, m in self.samples if m is not None]
        return {
            "gpu_util_mean": statistics.mean(util),
            "gpu_util_max": max(util),
            "gpu_busy_fraction": sum(u > 0 for u in util) / len(util),
            "gpu_mem_max_mib": max(memory) if memory else None,
            "samples": len(util),
            "source": "nvidia-smi" if self.process is not None else "torch.cuda.utilization",
        }


def _time(line: str) -> float | None:
    match = TIMESTAMP.match(line)
    if not match:
        return None
    t = dt.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S").timestamp()
    return t + (int(match.group(2)) / 1000 if match.group(2) else 0.0)


def job_breakdown(log: Path, wall: float) -> dict:
    """Where one training or sweep job's ``wall`` seconds went, from its log."""
    lines = log.read_text().splitlines() if log.exists() else []
    stamped = [(t, line) for line in lines if (t := _time(line)) is not None]
    part = {
        "jobs": 1,
        "wall": wall,
        "start-up": 0.0,
        "data loading": 0.0,
        "codec pre-training": 0.0,
        "set-up": 0.0,
        "training": 0.0,
        "evaluation": 0.0,
        "writing": 0.0,
        "rest of the job": 0.0,
    }
    if not stamped:
        part["rest of the job"] = wall
        return part
    first, last = stamped[0][0], stamped[-1][0]
    startup = next((float(m.group(1)) for _, line in stamped if (m := STARTUP.search(line))), None)
    part["start-up"] = startup if startup is not None else max(0.0, wall - (last - first))
    # a pack's timing line (a sweep_and_train job has two: its sweep's pack, then its reported runs')
    timings = [(t, [float(x) for x in m.groups()]) for t, line in stamped if (m := PACK_TIMING.search(line))]
    if timings:
        setup, training, evaluation = (sum(parts[i] for _, parts in timings) for i in range(3))
        t_first, first_parts = timings[0]
        codec_done = next((t for t, line in stamped if CODEC_DONE.search(line)), None)
        pretraining = max(0.0, codec_done - first) if codec_done is not None and codec_done < t_first else 0.0
        loading = max(0.0, t_first - sum(first_parts) - first - pretraining)
        part.update(
            {
                "set-up": setup,
                "training": training,
                "evaluation": evaluation,
                "data loading": loading,
                "codec pre-training": pretraining,
                # the rest of the logged time: writing results, the sweep's selection
                "writing": max(0.0, (last - first) - loading - pretraining - setup - training - evaluation),
            }
        )
    else:
        finished = next((float(m.group(1)) for _, line in stamped if (m := TRAINING_FINISHED.search(line))), 0.0)
        part["training"] = finished
    part["rest of the job"] = max(
        0.0,
        wall
        - sum(
            part[k]
            for k in ("start-up", "data loading", "codec pre-training", "set-up", "training", "evaluation", "writing")
        ),
    )
    return part


def breakdown(results: Path) -> dict:
    """Summed job seconds by category over every job of the run."""
    totals: dict[str, dict] = {}
    for tsv in sorted((results / "benchmarks").rglob("*.tsv")):
        rel = tsv.relative_to(results / "benchmarks")
        rows = tsv.read_text().splitlines()
        if len(rows) < 2:
            continue
        wall = float(rows[1].split("\t")[0])
        kind = rel.parts[0]
        if kind in JOB_GROUPS:
            part = job_breakdown(results / "logs" / rel.with_suffix(".log"), wall)
            group = totals.setdefault(JOB_GROUPS[kind], {})
            for key, value in part.items():
                group[key] = group.get(key, 0) + value
        else:
            group = totals.setdefault("other jobs", {"jobs": 0, "wall": 0.0})
            group["jobs"] += 1
            group["wall"] += wall
    return totals


def count_runs(results: Path) -> dict:
    reported = len(list((results / "runs").rglob("seed*.json")))
    sweep_runs = 0
    sweeps = list((results / "sweeps").rglob("*.parquet"))
    if sweeps:
        import pyarrow.parquet as pq

        sweep_runs = sum(pq.read_metadata(p).num_rows for p in sweeps)
    return {"reported_runs": reported, "sweep_runs": sweep_runs}


def dry_run_seconds(tree: Path, env: dict, snakemake: str, results: Path) -> float:
    """Wall time of ``snakemake -n`` of config.yaml's full grid (nothing is run)."""
    start = time.perf_counter()
    subprocess.run(
        [snakemake, "-n", "--quiet", "all", "--config", f"results={results}"],
        cwd=tree,
        env=env,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start


def run_commit(commit: str, args, out: Path) -> dict:
    tree, name = checkout(commit, out)
    work = out / name
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    results = work / "results"
    preset = work / "slice.yaml"
    preset.write_text(yaml.safe_dump(slice_config(args, results), sort_keys=False))
    env = dict(os.environ, PYTHONPATH=f"{tree}{os.pathsep}{os.environ.get('PYTHONPATH', '')}".rstrip(os.pathsep))
    env.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    snakemake = str(Path(sys.executable).with_name("snakemake"))
    dry = dry_run_seconds(tree, env, snakemake, work / "dry-run")
    target = [] if args.reports else [str(results / "metrics.parquet")]  # before --configfile, which takes several
    command = [
        snakemake,
        *target,
        "--cores",
        str(args.cores),
        "--configfile",
        "config.yaml",
        str(preset),
        *args.snakemake,
    ]
    print(f"[{name}] {' '.join(command)}  (in {tree})", flush=True)
    load_before = os.getloadavg()
    with GpuSampler() as gpu, open(work / "snakemake.log", "w") as snakelog:
        start = time.perf_counter()
        subprocess.run(command, cwd=tree, env=env, check=True, stdout=snakelog, stderr=subprocess.STDOUT)
        wall = time.perf_counter() - start
    runs = count_runs(results)
    total_runs = runs["reported_runs"] + runs["sweep_runs"]
    return {
        "commit": name,
        "tree": str(tree),
        "wall_s": wall,
        **runs,
        "runs_per_s": total_runs / wall,
        "dry_run_full_grid_s": dry,
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "breakdown": breakdown(results),
        "gpu": gpu.summary(),
        "gpu_unavailable": gpu.unavailable,
        "cores": args.cores,
    }


def snakemake_installed() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("snakemake") is not None
    except ImportError:  # a broken installation counts as none
        return False


def _merge(base: dict, over: dict) -> dict:
    """``over`` into ``base``, nested dictionaries key by key, as Snakemake merges --configfile."""
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def slice_datasets(config: dict) -> list[str]:
    """The slice's datasets; each one missing from the data cache becomes a synthetic table of its
    shape in ``config`` (keeping its code), named in the returned list."""
    from targetcodec.data.sources import raw_files

    stand_ins = []
    for key in config["run_datasets"]:
        spec = config["datasets"][key]
        if all(Path(f).exists() for f in raw_files(key, spec, config["data_cache"])):
            continue
        if key not in STAND_INS:
            raise SystemExit(f"dataset {key!r} is not in the data cache {config['data_cache']} and has no stand-in")
        rows, features = STAND_INS[key]
        config["datasets"][key] = {
            "code": spec.get("code", key),
            "source": "synthetic",
            "n": rows,
            "features": features,
            "targets": 1,
            "noise": 0.05,
            "seed": 0,
        }
        stand_ins.append(f"{key} ({rows:,} x {features})")
    return stand_ins


def group_job_specs(config: dict, results: Path) -> list[dict]:
    """The jobs of rules sweep_and_train_<k> for every dataset of the slice, with what each reads
    (Snakemake's params) and writes, at the paths the workflow gives them."""
    from targetcodec.methods import METHODS
    from targetcodec.train.settings import (
        Configuration,
        Runtime,
        configurations,
        job_groups,
        job_params,
        method_settings,
        seed_list,
    )

    seeds = seed_list(config)
    settings = method_settings(config)
    runtime = dataclasses.asdict(Runtime.from_config(config, str(REPO)))
    lr = config["sweeps"]["lr"]
    specs = []
    for dataset in config["run_datasets"]:
        for group, labels in job_groups(configurations(config["methods"], config["k_values"])).items():
            parsed = [Configuration.parse(label) for label in labels]
            k = parsed[0].k
            needs_codec = any(
                METHODS[c.method].uses_k and METHODS[c.method].needs_pretrained_codec(settings) for c in parsed
            )
            specs.append(
                {
                    "dataset": dataset,
                    "group": group,
                    "data": str(results / "prepared" / f"{dataset}.npz"),
                    "jobs": [job_params(config, dataset, label) for label in labels],
                    "runtime": runtime,
                    "grid": lr["grid"],
                    "sweep_seeds": lr["seeds"],
                    "seeds": seeds,
                    "k": k,
                    "codec_settings": config["codec"],
                    "codec_seed": config["split"]["seed"],
                    "codec": str(results / "codecs" / dataset / f"k{k}.npz") if needs_codec else None,
                    "codec_report": str(results / "codecs" / dataset / f"k{k}.json") if needs_codec else None,
                    "outputs": [
                        {
                            "runs": [str(results / "runs" / dataset / label / f"seed{s}.json") for s in seeds],
                            "sweep": str(results / "sweeps" / "lr" / dataset / f"{label}.parquet"),
                            "selected": str(results / "selected" / "lr" / dataset / f"{label}.json"),
                        }
                        for label in labels
                    ],
                    "checkpoints": str(results / "checkpoints" / dataset / group),
                    "log": str(results / "logs" / "sweep_and_train" / dataset / f"{group}.log"),
                    "benchmark": str(results / "benchmarks" / "sweep_and_train" / dataset / f"{group}.tsv"),
                }
            )
    return specs


def run_group_job(spec: dict) -> None:
    """One job of rule sweep_and_train_<k>, as its script (workflow/scripts/sweep_and_train_group.py)
    runs it under Snakemake."""
    from targetcodec.joblog import job_log, set_threads
    from targetcodec.locks import checkpoint_lock
    from targetcodec.train.jobs import CodecPretraining, ConfigurationFiles, JobContext, sweep_and_train_group
    from targetcodec.train.selection import sweep_seeds
    from targetcodec.train.settings import Runtime, TrainingJob

    with job_log(spec["log"]) as log, checkpoint_lock(spec["checkpoints"], log):
        set_threads(1)
        runtime = Runtime(**spec["runtime"])
        codec = spec["codec"]
        sweep_and_train_group(
            JobContext.load(spec["data"], None, runtime, log),
            [TrainingJob.from_params(job, runtime) for job in spec["jobs"]],
            grid=spec["grid"],
            sweep_seeds=sweep_seeds(spec["sweep_seeds"]),
            seeds=spec["seeds"],
            outputs=[ConfigurationFiles(**files) for files in spec["outputs"]],
            checkpoints=spec["checkpoints"],
            codec=CodecPretraining(spec["k"], spec["codec_settings"], spec["codec_seed"], codec, spec["codec_report"])
            if codec
            else None,
        )


def _write_benchmark(path: Path, wall: float) -> None:
    """A Snakemake benchmark file's first column, the job's wall seconds (what breakdown reads)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"s\n{wall:.4f}\n")


def run_without_snakemake(args, out: Path) -> dict:
    """The slice's jobs without Snakemake: the data preparation in this process, then each training
    job in a process of its own (its start-up counted, as under Snakemake), ``args.jobs`` at a time."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from concurrent.futures import ThreadPoolExecutor

    from targetcodec.data.prepare import prepare_dataset

    work = out / "WORKTREE-jobs"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    results = work / "results"
    config = _merge(yaml.safe_load((REPO / "config.yaml").read_text()), slice_config(args, results))
    stand_ins = slice_datasets(config)
    env = dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}".rstrip(os.pathsep))
    env.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})

    def run_job(spec: dict) -> None:
        path = Path(spec["log"]).with_suffix(".json")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(spec))
        start = time.perf_counter()
        with open(path.with_suffix(".out"), "w") as output:
            done = subprocess.run(
                [sys.executable, __file__, "--job", str(path)], env=env, stdout=output, stderr=subprocess.STDOUT
            )
        if done.returncode:
            tail = path.with_suffix(".out").read_text()[-3000:]
            raise RuntimeError(f"job {spec['dataset']}/{spec['group']} failed; the end of its output:\n{tail}")
        _write_benchmark(Path(spec["benchmark"]), time.perf_counter() - start)

    jobs = int(args.jobs or os.cpu_count() or 1)
    print(f"[WORKTREE] {len(config['run_datasets'])} datasets without Snakemake, {jobs} jobs at a time", flush=True)
    load_before = os.getloadavg()
    with GpuSampler() as gpu:
        start = time.perf_counter()
        for dataset in config["run_datasets"]:
            t0 = time.perf_counter()
            prepare_dataset(
                dataset,
                config["datasets"][dataset],
                config["split"],
                config["data_cache"],
                results / "prepared" / f"{dataset}.npz",
                results / "prepared" / f"{dataset}.json",
                log=lambda message: None,
            )
            _write_benchmark(results / "benchmarks" / "prepare" / f"{dataset}.tsv", time.perf_counter() - t0)
        specs = group_job_specs(config, results)
        # the jobs with the most configurations first, as the workflow's rule priorities order them
        specs.sort(key=lambda spec: -len(spec["jobs"]))
        with ThreadPoolExecutor(jobs) as pool:
            list(pool.map(run_job, specs))
        wall = time.perf_counter() - start
    runs = count_runs(results)
    return {
        "commit": "WORKTREE",
        "tree": str(REPO),
        "snakemake": False,
        "stand_ins": stand_ins,
        "datasets": list(config["run_datasets"]),
        "wall_s": wall,
        **runs,
        "runs_per_s": (runs["reported_runs"] + runs["sweep_runs"]) / wall,
        "dry_run_full_grid_s": None,
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "breakdown": breakdown(results),
        "gpu": gpu.summary(),
        "gpu_unavailable": gpu.unavailable,
        "cores": jobs,
        "training_jobs": len(specs),
    }


def report(result: dict) -> str:
    lines = [
        f"== {result['commit']}: {result['wall_s']:.1f} s wall, {result['reported_runs']} reported + "
        f"{result['sweep_runs']} sweep runs = {result['runs_per_s']:.2f} runs/s on {result['cores']} cores; "
        + (
            f"dry run of the full grid {result['dry_run_full_grid_s']:.2f} s; "
            if result.get("dry_run_full_grid_s") is not None
            else "without Snakemake (no dry run); "
        )
        + f"load average before/after {result['load_before'][0]:.2f}/{result['load_after'][0]:.2f}"
    ]
    if result.get("stand_ins"):
        lines.append(f"   synthetic stand-ins (not in the data cache): {', '.join(result['stand_ins'])}")
    for group, part in result["breakdown"].items():
        wall = part["wall"]
        shares = ", ".join(
            f"{k} {v:.1f} s ({100 * v / wall:.0f}%)" for k, v in part.items() if k not in ("jobs", "wall") and v > 0
        )
        lines.append(f"   {group}: {part['jobs']} jobs, {wall:.1f} job-s" + (f": {shares}" if shares else ""))
    if result["gpu"]:
        g = result["gpu"]
        memory = f", memory up to {g['gpu_mem_max_mib']:.0f} MiB" if g.get("gpu_mem_max_mib") is not None else ""
        lines.append(
            f"   GPU: utilisation mean {g['gpu_util_mean']:.0f}% (max {g['gpu_util_max']:.0f}%), busy in "
            f"{100 * g['gpu_busy_fraction']:.0f}% of samples{memory}"
        )
    elif result.get("gpu_unavailable"):
        lines.append(f"   GPU utilisation: unavailable ({result['gpu_unavailable']})")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--commits", nargs="+", default=["WORKTREE"], help="commits to run in turn (WORKTREE: this tree)"
    )
    parser.add_argument("--datasets", nargs="+", default=["ailerons", "cpu_act"])
    parser.add_argument("--data-cache", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--methods", nargs="+", help="default: config.yaml's (all seven)")
    parser.add_argument("--k-values", type=int, nargs="+", help="default: config.yaml's (5, 15, 25)")
    parser.add_argument("--seeds", type=int)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--patience", type=int)
    parser.add_argument("--lr-grid", type=float, nargs="+")
    parser.add_argument("--sweep-seeds", type=int)
    parser.add_argument("--pretrain-steps", type=int, help="codec pre-training steps (small: 200)")
    parser.add_argument(
        "--reports",
        action="store_true",
        help="also build the tables and figures (default: the runs and sweeps, up to metrics.parquet)",
    )
    parser.add_argument("--cores", default="2")
    parser.add_argument(
        "--parallel",
        action="store_true",
        help="run the commits at the same time, each with --cores "
        "(fairer on a machine shared with others' fluctuating load)",
    )
    parser.add_argument(
        "--out", default="/tmp/targetcodec-grid-benchmark", help="worktrees, results and JSON (outside the repo)"
    )
    parser.add_argument(
        "--without-snakemake",
        action="store_true",
        default=None,
        help="run the jobs without Snakemake (the default where it is not installed; this working tree only)",
    )
    parser.add_argument("--jobs", type=int, help="without Snakemake: jobs at a time (default: --cores, else all CPUs)")
    parser.add_argument("--job", help=argparse.SUPPRESS)  # one job of run_without_snakemake, in its own process
    parser.add_argument(
        "--snakemake", nargs=argparse.REMAINDER, default=[], help="further Snakemake arguments (e.g. --profile)"
    )
    args = parser.parse_args(argv)
    if args.job:
        run_group_job(json.loads(Path(args.job).read_text()))
        return
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if args.without_snakemake is None:
        args.without_snakemake = not snakemake_installed()
    if args.without_snakemake:
        if args.commits != ["WORKTREE"]:
            raise SystemExit("--without-snakemake runs this working tree only (no --commits)")
        if args.jobs is None and args.cores != "all":
            args.jobs = int(args.cores)
        results = [run_without_snakemake(args, out)]
        print(report(results[0]), flush=True)
    elif args.parallel:  # at the same time: each commit sees the same load of a shared machine
        from concurrent.futures import ThreadPoolExecutor

        trees = [checkout(commit, out) for commit in args.commits]  # git worktree add, one at a time
        with ThreadPoolExecutor(len(trees)) as pool:
            results = list(pool.map(lambda commit: run_commit(commit, args, out), args.commits))
        for result in results:
            print(report(result), flush=True)
    else:
        results = []
        for commit in args.commits:
            results.append(run_commit(commit, args, out))
            print(report(results[-1]), flush=True)
    if len(results) > 1:
        base = results[0]
        for other in results[1:]:
            print(f"{other['commit']} vs {base['commit']}: {base['wall_s'] / other['wall_s']:.2f}x faster (wall)")
    stamp = dt.datetime.now().strftime("%Y%m%dT%H%M%S")
    (out / f"grid-{stamp}.json").write_text(json.dumps({"args": vars(args), "results": results}, indent=1))
    print(f"details: {out / f'grid-{stamp}.json'}")


if __name__ == "__main__":
    main()
