"""Seed-samples per second of a batched pack against the naive one-run DataLoader loop, side by side.

    .venv/bin/python benchmarks/pack_speed.py                      # CPU, diamonds-shaped data
    .venv/bin/python benchmarks/pack_speed.py --device cuda --runs 1 10 50 170

"seed-samples/s" = training rows processed per second, summed over the runs trained at once
(one epoch of every run = runs x rows). Both loops train the same MLP (2 x 128, dropout 0.3),
Adam, unit gradient clipping, per-epoch validation; only the batching differs.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch

from targetcodec import METHODS, Architecture, MethodSettings, RunSpec, TrainingConfig, codec_for_method, train_pack
from targetcodec.data import SplitData
from targetcodec.reference import train_single_run


def shaped_like(rows: int, features: int, seed: int = 0) -> SplitData:
    rng = np.random.default_rng(seed)
    X = rng.uniform(size=(rows, features)).astype(np.float32)
    y = (np.sin(3 * X[:, :1]) + X[:, 1:2] ** 2 + 0.1 * rng.normal(size=(rows, 1))).astype(np.float32)
    y = (y - y.min()) / (y.max() - y.min())
    n_val = rows // 10
    return SplitData(
        X[: rows - 2 * n_val],
        y[: rows - 2 * n_val],
        X[-2 * n_val : -n_val],
        y[-2 * n_val : -n_val],
        X[-n_val:],
        y[-n_val:],
        np.zeros(1),
        np.ones(1),
    )


def measure(fn, runs: int, rows: int, epochs: int, device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return runs * rows * epochs / (time.perf_counter() - start)


def pack_speeds(
    device: str = "cpu",
    runs=(1, 10),
    rows: int = 53_940,
    features: int = 6,
    epochs: int = 2,
    batch_size: int = 256,
    method: str = "least_squares",
    k: int = 25,
    threads: int = 1,
) -> dict:
    """Seed-samples/s of the naive loop (one run) and of packs of each of ``runs`` runs."""
    torch.set_num_threads(threads)
    device = torch.device(device)
    data = shaped_like(rows, features)
    n_train = len(data.y_train)
    m = METHODS[method]
    k = k if m.uses_k else None
    codec = codec_for_method(m, data.y_train, k, MethodSettings()) if k else None
    training = TrainingConfig(batch_size=batch_size, max_epochs=epochs, patience=10**6, log_every=10**6)
    arch = Architecture()

    # the first CUDA kernels, allocations and lazy imports of either loop are not part of the steady state
    small = TrainingConfig(batch_size=batch_size, max_epochs=1, patience=10)
    warm = shaped_like(4096, features)
    train_pack(warm, m, [RunSpec(0)], k=k, codec=codec, architecture=arch, training=small, device=device)
    train_single_run(
        warm, m, RunSpec(0), k=k, codec=codec, architecture=arch, training=small, device=device, dtype=torch.float32
    )
    naive = measure(
        lambda: train_single_run(
            data,
            m,
            RunSpec(seed=0),
            k=k,
            codec=codec,
            architecture=arch,
            training=training,
            device=device,
            dtype=torch.float32,
        ),
        1,
        n_train,
        epochs,
        device,
    )
    measured = [("naive loop (DataLoader, one run)", 1, naive)]
    for R in runs:
        specs = [RunSpec(seed=s) for s in range(R)]
        speed = measure(
            lambda specs=specs: train_pack(
                data, m, specs, k=k, codec=codec, architecture=arch, training=training, device=device
            ),
            R,
            n_train,
            epochs,
            device,
        )
        measured.append((f"pack of {R}", R, speed))
    where = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"{platform.processor() or platform.machine()}, {threads} thread(s)"
    )
    return {
        "device": where,
        "method": method,
        "train_rows": n_train,
        "features": features,
        "batch_size": batch_size,
        "epochs": epochs,
        "rows": [
            {"loop": name, "runs": R, "seed_samples_per_s": speed, "vs_naive": speed / naive}
            for name, R, speed in measured
        ],
    }


def table(result: dict) -> str:
    lines = ["| loop | runs | seed-samples/s | vs naive |", "|---|---|---|---|"]
    for row in result["rows"]:
        lines.append(f"| {row['loop']} | {row['runs']} | {row['seed_samples_per_s']:,.0f} | {row['vs_naive']:.1f}x |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--runs", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--rows", type=int, default=53_940, help="rows in all (80%% train), default: diamonds")
    parser.add_argument("--features", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--method", default="least_squares", choices=list(METHODS))
    parser.add_argument("--k", type=int, default=25)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", help="also write the measurements here")
    args = parser.parse_args(argv)
    result = pack_speeds(
        args.device,
        args.runs,
        args.rows,
        args.features,
        args.epochs,
        args.batch_size,
        args.method,
        args.k,
        args.threads,
    )
    print(
        f"{args.method}, {result['train_rows']:,} x {args.features} training rows, batch {args.batch_size}, "
        f"{args.epochs} epochs, on {result['device']}\n"
    )
    print(table(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result | {"args": vars(args)}, f, indent=1)


if __name__ == "__main__":
    main()
