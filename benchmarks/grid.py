"""The grid benchmark: a fixed slice of the paper's grid through Snakemake, timed, with where the time went.

    .venv/bin/python benchmarks/grid.py                                   # this working tree, small slice
    .venv/bin/python benchmarks/grid.py --commits e8ab8ad HEAD            # two commits side by side
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
are left in "rest of the job". On a machine with nvidia-smi, GPU utilisation is sampled every
0.5 s. Also timed: a dry run (``snakemake -n``) of the full grid of config.yaml.
"""

from __future__ import annotations

import argparse
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
    """nvidia-smi's utilisation every 0.5 s in a background thread (nothing without nvidia-smi)."""

    def __init__(self):
        self.samples: list[tuple[float, float]] = []
        self.process = None

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
            threading.Thread(target=self._read, daemon=True).start()
        return self

    def _read(self):
        for line in self.process.stdout:
            try:
                util, mem = (float(x) for x in line.split(","))
                self.samples.append((util, mem))
            except ValueError:
                pass

    def __exit__(self, *exc):
        if self.process is not None:
            self.process.terminate()
            self.process.wait()

    def summary(self) -> dict | None:
        if not self.samples:
            return None
        util = [u for u, _ in self.samples]
        return {
            "gpu_util_mean": statistics.mean(util),
            "gpu_util_max": max(util),
            "gpu_busy_fraction": sum(u > 0 for u in util) / len(util),
            "gpu_mem_max_mib": max(m for _, m in self.samples),
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
        "cores": args.cores,
    }


def report(result: dict) -> str:
    lines = [
        f"== {result['commit']}: {result['wall_s']:.1f} s wall, {result['reported_runs']} reported + "
        f"{result['sweep_runs']} sweep runs = {result['runs_per_s']:.2f} runs/s on {result['cores']} cores; "
        f"dry run of the full grid {result['dry_run_full_grid_s']:.2f} s; load average before/after "
        f"{result['load_before'][0]:.2f}/{result['load_after'][0]:.2f}"
    ]
    for group, part in result["breakdown"].items():
        wall = part["wall"]
        shares = ", ".join(
            f"{k} {v:.1f} s ({100 * v / wall:.0f}%)" for k, v in part.items() if k not in ("jobs", "wall") and v > 0
        )
        lines.append(f"   {group}: {part['jobs']} jobs, {wall:.1f} job-s" + (f": {shares}" if shares else ""))
    if result["gpu"]:
        g = result["gpu"]
        lines.append(
            f"   GPU: utilisation mean {g['gpu_util_mean']:.0f}% (max {g['gpu_util_max']:.0f}%), busy in "
            f"{100 * g['gpu_busy_fraction']:.0f}% of samples, memory up to {g['gpu_mem_max_mib']:.0f} MiB"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--commits", nargs="+", default=["WORKTREE"], help="commits to run in turn (WORKTREE: this tree)"
    )
    parser.add_argument("--datasets", nargs="+", default=["ailerons", "cpu_act"])
    parser.add_argument("--data-cache", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
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
        "--snakemake", nargs=argparse.REMAINDER, default=[], help="further Snakemake arguments (e.g. --profile)"
    )
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if args.parallel:  # at the same time: each commit sees the same load of a shared machine
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
