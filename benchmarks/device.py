"""Every measurement the documentation projects for a GPU, in one command, into one folder.

    python benchmarks/device.py --out DIR                # the GPU if torch sees one, else the CPU
    python benchmarks/device.py --out DIR --size cpu     # the CPU sizes (a few minutes on 2 cores)

It measures, each part on its own (a failing part is recorded and the next one runs):

1. pack speed (benchmarks/pack_speed.py): seed-samples/s of the naive one-run loop and of packs
   of 1, 10, 50 and 170 runs, diamonds-shaped data, least squares and end to end (k = 25);
2. a slice of the paper's grid (benchmarks/grid.py, its small slice: ailerons and cpu_act, all 17
   configurations), its training jobs sharing the device, with the GPU's utilisation (nvidia-smi,
   else torch's NVML reading, else recorded as unavailable). The jobs run without Snakemake (a
   bare GPU machine has none), one process each as Snakemake would start them; datasets missing
   from the data cache are synthetic tables of their shape;
3. the OpenStreetView-5M head's step (benchmarks/osv5m_speed.py): a pack of 1 and of 5 seeds at
   batch 32,768 in fp32 and bf16;
4. the same step for one seed under DistributedDataParallel, one process per GPU there is.

Writes ``device.json`` (everything, with the machine and the command) and ``device.md`` (a
summary) to ``--out``, after each part, so a run stopped half-way keeps what it measured. Scratch
files (the grid slice's results and logs) go to ``--work``, a temporary folder by default.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for path in (str(REPO), str(HERE)):  # the library, and the benchmarks this one runs
    if path not in sys.path:
        sys.path.insert(0, path)

import grid  # noqa: E402
import osv5m_speed  # noqa: E402
import pack_speed  # noqa: E402

# What each part measures, by size: "gpu" what the documentation projects (under 4 minutes on an
# H200), "cpu" the same shapes made small enough for 2 CPU cores, "tiny" for the tests.
SIZES = {
    "gpu": {
        "pack": {"runs": [1, 10, 50, 170], "rows": 53_940, "epochs": 2, "methods": ["least_squares", "end_to_end"]},
        "osv5m": {
            "runs": [1, 5],
            "batch": 32_768,
            "steps": 5,
            "width": 512,
            "depth": 12,
            "precisions": ["fp32", "bf16"],
            "ddp_processes": None,  # one per GPU
        },
        "grid": {"datasets": ["ailerons", "cpu_act"], "size": "small", "jobs": None},  # all 8 jobs at once
    },
    "cpu": {
        "pack": {"runs": [1, 10], "rows": 10_000, "epochs": 1, "methods": ["least_squares", "end_to_end"]},
        "osv5m": {
            "runs": [1, 2],
            "batch": 512,
            "steps": 2,
            "width": 128,
            "depth": 2,
            "precisions": ["fp32"],
            "ddp_processes": 2,
        },
        "grid": {
            "datasets": ["ailerons", "cpu_act"],
            "size": "small",
            "epochs": 3,
            "k_values": [5],
            "pretrain_steps": 50,
            "jobs": 2,
        },
    },
    "tiny": {
        "pack": {"runs": [1, 2], "rows": 1_000, "epochs": 1, "methods": ["least_squares"]},
        "osv5m": {
            "runs": [1, 2],
            "batch": 64,
            "steps": 1,
            "width": 32,
            "depth": 1,
            "precisions": ["fp32"],
            "ddp_processes": 2,
        },
        "grid": {
            "datasets": ["diabetes"],
            "size": "small",
            "methods": ["least_squares", "trained_codec"],
            "k_values": [5],
            "seeds": 1,
            "epochs": 2,
            "pretrain_steps": 20,
            "jobs": 2,
        },
    },
}
# in this order: DDP last, as the part most likely to fail or hang on a new machine (NCCL)
PARTS = ("pack", "grid", "osv5m", "ddp")


def machine(device: str) -> dict:
    """Where and with what the measurements were taken."""
    info = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cpu": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg()[0],
        "device": device,
        "snakemake": grid.snakemake_installed(),
    }
    if device == "cuda":
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    if shutil.which("nvidia-smi"):
        query = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
        )
        info["nvidia_smi"] = query.stdout.strip() or query.stderr.strip()
    try:
        info["commit"] = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        info["commit"] = None  # a copy of the tree without its repository
    return info


def measure_packs(device: str, s: dict) -> dict:
    return {
        method: pack_speed.pack_speeds(device, s["runs"], s["rows"], 6, s["epochs"], 256, method, 25)
        for method in s["methods"]
    }


def measure_osv5m(device: str, s: dict) -> list[dict]:
    """The head's step for each pack size and precision; a pack the GPU has no memory for is
    recorded as such and the others still measure."""
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # the training job's default (osv5m.tf32)
    rows = []
    for precision in s["precisions"]:
        for runs in s["runs"]:
            try:
                rows.append(
                    osv5m_speed.train_speed(device, runs, precision=precision, method="end_to_end", **_shape(s))
                )
            except torch.cuda.OutOfMemoryError as e:
                rows.append(
                    {"parallel": "pack", "runs": runs, "precision": precision, "batch": s["batch"], "error": str(e)}
                )
            if device == "cuda":
                torch.cuda.empty_cache()  # the next pack, and the DDP processes, want the memory back
    return rows


def measure_ddp(device: str, s: dict) -> dict:
    """One seed under DistributedDataParallel, one process per GPU (on CPUs: gloo processes)."""
    processes = s["ddp_processes"] or max(1, torch.cuda.device_count())
    return osv5m_speed.ddp_train_speed(device, processes, precision="fp32", method="end_to_end", **_shape(s))


def _shape(s: dict) -> dict:
    return {"batch": s["batch"], "steps": s["steps"], "width": s["width"], "depth": s["depth"]}


def measure_grid(device: str, s: dict, work: Path) -> dict:
    argv = ["--out", str(work / "grid"), "--without-snakemake", "--datasets", *s["datasets"], "--size", s["size"]]
    for name in ("methods", "k_values", "seeds", "epochs", "pretrain_steps", "jobs"):
        value = s.get(name)
        if name == "jobs" and value is None:
            value = os.cpu_count()
        if value is not None:
            argv += [f"--{name.replace('_', '-')}", *map(str, value if isinstance(value, list) else [value])]
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES")
    if device == "cpu":  # the jobs' device is config.yaml's "auto": let them see no GPU
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    try:
        grid.main(argv)
    finally:
        if hidden is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = hidden
    found = sorted((work / "grid").glob("grid-*.json"))
    return json.loads(found[-1].read_text())["results"][0] | {"argv": argv}


def markdown(record: dict) -> str:
    m = record["machine"]
    where = ", ".join(m.get("gpus") or []) or f"{m['cpu']}, {m['cpus']} CPUs"
    lines = [
        f"# Device benchmark, {m['date']}",
        "",
        f"{where}; torch {m['torch']} (CUDA {m['cuda']}), Python {m['python']}, host {m['host']}, "
        f"commit {m['commit'] or 'unknown'}, load average {m['load_average']:.1f} at the start; "
        f"sizes `{record['size']}`. Command: `{m['command']}`.",
    ]
    if m.get("nvidia_smi"):
        lines.append(f"nvidia-smi: {m['nvidia_smi']}.")
    parts = record["parts"]
    if "pack" in parts:
        lines += ["", "## Pack speed (benchmarks/pack_speed.py)", ""]
        lines += _part(parts["pack"], _pack_lines)
    if "grid" in parts:
        lines += ["", "## Grid slice (benchmarks/grid.py)", ""]
        lines += _part(parts["grid"], _grid_lines)
    if "osv5m" in parts:
        lines += ["", "## OpenStreetView-5M head step, packs (benchmarks/osv5m_speed.py)", ""]
        lines += _part(parts["osv5m"], _osv5m_lines)
    if "ddp" in parts:
        lines += ["", "## OpenStreetView-5M head step, DDP (benchmarks/osv5m_speed.py)", ""]
        lines += _part(parts["ddp"], lambda r: _osv5m_lines([r]))
    return "\n".join(lines) + "\n"


def _part(part: dict, describe) -> list[str]:
    if part.get("error"):
        return [f"FAILED after {part['seconds']:.1f} s:", "", "```", part["error"], "```"]
    if part.get("skipped"):
        return [f"Skipped: {part['skipped']}"]
    return [*describe(part["result"]), "", f"({part['seconds']:.1f} s)"]


def _pack_lines(result: dict) -> list[str]:
    lines = []
    for method, r in result.items():
        lines += [
            f"{method}, {r['train_rows']:,} x {r['features']} training rows, batch {r['batch_size']}, "
            f"{r['epochs']} epoch(s), on {r['device']}:",
            "",
            pack_speed.table(r),
            "",
        ]
    return lines[:-1]


def _osv5m_lines(rows: list[dict]) -> list[str]:
    lines = [
        "| parallel | seeds | precision | batch | s/step | examples/s per seed | peak memory GiB | h per 100M examples (pack) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(
                f"| {r['parallel']} | {r['runs']} | {r['precision']} | {r['batch']:,} | {r['error'][:200]} | | | |"
            )
            continue
        lines.append(
            f"| {r['parallel']} | {r['runs']} | {r['precision']} | {r['batch']:,} | {r['seconds_per_step']:.4f} | "
            f"{r['examples_per_s_per_seed']:,.0f} | {r['peak_memory_gib']:.1f} | {r['hours_for_100M_examples_per_pack']:.2f} |"
        )
    return lines


def _grid_lines(result: dict) -> list[str]:
    return ["```", grid.report(result), "```"]


def write(out: Path, record: dict) -> None:
    (out / "device.json").write_text(json.dumps(record, indent=1))
    (out / "device.md").write_text(markdown(record))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder for device.json and device.md")
    parser.add_argument("--device", choices=["cuda", "cpu"], help="default: cuda if torch sees a GPU")
    parser.add_argument("--size", choices=sorted(SIZES), help="default: gpu on a GPU, cpu on the CPU")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--work", help="scratch folder (default: a temporary one, deleted at the end)")
    args = parser.parse_args(argv)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    size = args.size or ("gpu" if device == "cuda" else "cpu")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread per job, as the workflow runs them
    record = {"machine": machine(device), "size": size, "sizes": SIZES[size], "parts": {}}
    write(out, record)
    with tempfile.TemporaryDirectory(prefix="device-benchmark-") as tmp:
        work = Path(args.work or tmp)
        for name in args.parts:
            print(f"== {name}", flush=True)
            start = time.perf_counter()
            part: dict = {}
            try:
                if name == "pack":
                    part["result"] = measure_packs(device, SIZES[size]["pack"])
                elif name == "osv5m":
                    part["result"] = measure_osv5m(device, SIZES[size]["osv5m"])
                elif name == "ddp":
                    part["result"] = measure_ddp(device, SIZES[size]["osv5m"])
                else:
                    part["result"] = measure_grid(device, SIZES[size]["grid"], work)
            except Exception as e:  # recorded: the other parts still measure
                traceback.print_exc()
                part["error"] = f"{type(e).__name__}: {e}"
            part["seconds"] = time.perf_counter() - start
            record["parts"][name] = part
            write(out, record)
    torch.set_num_threads(threads)
    print((out / "device.md").read_text())
    failed = [name for name, part in record["parts"].items() if part.get("error")]
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)} (see {out / 'device.md'})")


if __name__ == "__main__":
    main()
