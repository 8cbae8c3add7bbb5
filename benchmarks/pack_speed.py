"""Seed-samples per second of a batched pack against the naive one-run DataLoader loop, side by side.

    .venv/bin/python benchmarks/pack_speed.py                      # CPU, diamonds-shaped data
    .venv/bin/python benchmarks/pack_speed.py --device cuda --runs 1 10 50 170
    .venv/bin/python benchmarks/pack_speed.py --cnn                # RetinaMNIST's CNN, packs of 1, 10, 12

"seed-samples/s" = training rows processed per second, summed over the runs trained at once
(one epoch of every run = runs x rows). Both loops train the same MLP (2 x 128, dropout 0.3),
Adam, unit gradient clipping, per-epoch validation; only the batching differs.

``--cnn`` measures config.yaml's CNN (three 3x3 convolutions 32-64-64, two layers of 256, dropout
0.5, batch 64) on RetinaMNIST-shaped images (1,080 x 3 x 28 x 28 training images; ``--data`` takes
a prepared .npz, e.g. results/prepared/retinamnist.npz, instead): images/s summed over a pack's
runs, the fraction of the CPU's attainable FLOP/s this reaches (the packed CNN's forward and
backward FLOPs per image counted from its layer shapes, over a large float32 matrix product on the
same threads), and the projected time of RetinaMNIST's full run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import platform
import statistics
import time

import numpy as np
import torch

from targetcodec import METHODS, Architecture, MethodSettings, RunSpec, TrainingConfig, codec_for_method, train_pack
from targetcodec.data import SplitData
from targetcodec.nn import layer_shapes
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


# RetinaMNIST's full run as config.yaml trains it: per configuration a learning-rate sweep pack
# (4 rates x 3 seeds) and the reported seeds' pack, at most 100 epochs each.
RETINAMNIST = {"configurations": 7, "sweep_runs": 12, "reported_runs": 10, "max_epochs": 100}
CNN = Architecture(kind="cnn", conv_channels=(32, 64, 64), fc_width=256, fc_depth=2, fc_dropout=0.5)


def images_like_retinamnist(train: int = 1080, val: int = 120, test: int = 400, seed: int = 0) -> SplitData:
    """Standardised 3 x 28 x 28 images with targets in [0, 1], RetinaMNIST's split sizes (the
    arithmetic, hence the speed, does not depend on the pixels)."""
    rng = np.random.default_rng(seed)
    images = lambda n: rng.normal(size=(n, 3, 28, 28)).astype(np.float32)  # noqa: E731
    targets = lambda n: rng.integers(0, 5, size=(n, 1)).astype(np.float32) / 4  # noqa: E731
    return SplitData(
        images(train),
        targets(train),
        images(val),
        targets(val),
        images(test),
        targets(test),
        np.zeros(1),
        4 * np.ones(1),
    )


def network_flops(arch: Architecture, input_shape, output_size: int) -> dict:
    """Multiply-adds x 2 of one run on one image: forward, and forward + backward (the backward pass
    costs two products per layer, the gradients of the weights and of the layer's input, except the
    first layer, whose input needs no gradient). Elementwise work (bias, relu, pooling, dropout)
    is left out: it is memory traffic, not arithmetic."""
    shapes = layer_shapes(arch, tuple(input_shape), output_size)
    _, height, width = input_shape if len(input_shape) == 3 else (None, 1, 1)
    products = []  # multiply-adds per layer, in order
    for c_in, c_out in shapes.conv:  # 3x3, padding 1, then 2x2 pooling
        products.append(height * width * c_out * c_in * 9)
        height, width = height // 2, width // 2
    products += [f_in * f_out for f_in, f_out in shapes.linear]
    forward = 2 * sum(products)
    return {"forward": forward, "forward_backward": forward + 2 * (2 * sum(products) - products[0])}


def attainable_flops(n: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of a large float32 matrix product on torch's current threads (best of ``repeats``)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def projected_full_run(epoch_s: dict[int, float], cores: int = 2) -> float:
    """Seconds for RetinaMNIST's full run when every run trains all its epochs (no early stop), one
    1-thread job per core: 7 configurations x (sweep pack + reported pack) x 100 epochs."""
    r = RETINAMNIST
    per_configuration = r["max_epochs"] * (epoch_s[r["sweep_runs"]] + epoch_s[r["reported_runs"]])
    return r["configurations"] * per_configuration / cores


def cnn_speeds(
    runs=(1, 10, 12),
    epochs: int = 1,
    batch_size: int = 64,
    method: str = "least_squares",
    k: int = 25,
    threads: int = 1,
    repeats: int = 3,
    data: SplitData | None = None,
) -> dict:
    """Images/s of packs of ``runs`` runs of config.yaml's CNN on the CPU (median and range of
    ``repeats`` trainings of ``epochs`` epochs each, validation included), their share of the
    attainable FLOP/s, and the projected full RetinaMNIST run."""
    torch.set_num_threads(threads)
    data = data if data is not None else images_like_retinamnist()
    n_train = len(data.y_train)
    m = METHODS[method]
    k = k if m.uses_k else None
    codec = codec_for_method(m, data.y_train, k, MethodSettings()) if k else None
    flops = network_flops(CNN, data.X_train.shape[1:], m.output_size(k, data.m))
    peak = attainable_flops()
    training = TrainingConfig(
        batch_size=batch_size, max_epochs=epochs, patience=10**6, weight_decay=1e-2, log_every=10**6
    )
    # oneDNN builds its kernels for each new shape on first use: not part of the steady state
    train_pack(
        data, m, [RunSpec(0)], k=k, codec=codec, architecture=CNN, training=dataclasses.replace(training, max_epochs=1)
    )
    rows = []
    for R in runs:
        specs = [RunSpec(seed=s, lr=1e-3) for s in range(R)]
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            train_pack(data, m, specs, k=k, codec=codec, architecture=CNN, training=training)
            seconds.append((time.perf_counter() - start) / epochs)
        epoch_s = statistics.median(seconds)
        images_per_s = R * n_train / epoch_s
        rows.append(
            {
                "runs": R,
                "epoch_s": epoch_s,
                "epoch_s_range": [min(seconds), max(seconds)],
                "images_per_s": images_per_s,
                "images_per_s_range": [R * n_train / max(seconds), R * n_train / min(seconds)],
                "flops_per_s": images_per_s * flops["forward_backward"],
                "flop_fraction": images_per_s * flops["forward_backward"] / peak,
            }
        )
    epoch_s = {row["runs"]: row["epoch_s"] for row in rows}
    full = (
        projected_full_run(epoch_s)
        if {RETINAMNIST["sweep_runs"], RETINAMNIST["reported_runs"]} <= set(epoch_s)
        else None
    )
    return {
        "device": f"{platform.processor() or platform.machine()}, {threads} thread(s)",
        "method": method,
        "train_images": n_train,
        "image_shape": list(data.X_train.shape[1:]),
        "batch_size": batch_size,
        "epochs": epochs,
        "repeats": repeats,
        "flops_per_image": flops,
        "attainable_flops_per_s": peak,
        "rows": rows,
        "projected_full_run_s": full,
    }


def cnn_table(result: dict) -> str:
    lines = [
        "| runs | images/s (range) | GFLOP/s | share of attainable | epoch |",
        "|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        low, high = row["images_per_s_range"]
        lines.append(
            f"| {row['runs']} | {row['images_per_s']:,.0f} ({low:,.0f}-{high:,.0f}) | {row['flops_per_s'] / 1e9:.1f} | "
            f"{row['flop_fraction']:.0%} | {row['epoch_s']:.2f} s |"
        )
    flops = result["flops_per_image"]
    lines += [
        "",
        f"forward + backward: {flops['forward_backward'] / 1e6:.1f} MFLOP per image and run "
        f"(forward {flops['forward'] / 1e6:.1f}); attainable: {result['attainable_flops_per_s'] / 1e9:.0f} GFLOP/s "
        f"(float32 2048 x 2048 matrix product)",
    ]
    if result["projected_full_run_s"] is not None:
        r = RETINAMNIST
        lines.append(
            f"projected full RetinaMNIST run, {r['configurations']} configurations x ({r['sweep_runs']}-run sweep pack + "
            f"{r['reported_runs']}-run pack) x {r['max_epochs']} epochs, one 1-thread job per core on 2 cores: "
            f"{result['projected_full_run_s'] / 3600:.2f} h"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--runs", type=int, nargs="+", help="pack sizes (default: 1 10, with --cnn 1 10 12)")
    parser.add_argument("--rows", type=int, default=53_940, help="rows in all (80%% train), default: diamonds")
    parser.add_argument("--features", type=int, default=6)
    parser.add_argument("--epochs", type=int, help="default: 2, with --cnn 1")
    parser.add_argument("--batch-size", type=int, help="default: 256, with --cnn 64")
    parser.add_argument("--method", default="least_squares", choices=list(METHODS))
    parser.add_argument("--k", type=int, default=25)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cnn", action="store_true", help="RetinaMNIST's CNN on the CPU (see above)")
    parser.add_argument("--data", help="with --cnn: a prepared .npz to train on instead of random images")
    parser.add_argument("--repeats", type=int, default=3, help="with --cnn: trainings per pack size (median)")
    parser.add_argument("--json", help="also write the measurements here")
    args = parser.parse_args(argv)
    if args.cnn:
        result = cnn_speeds(
            args.runs or [1, 10, 12],
            args.epochs or 1,
            args.batch_size or 64,
            args.method,
            args.k,
            args.threads,
            args.repeats,
            SplitData.load(args.data) if args.data else None,
        )
        print(
            f"{args.method}, CNN, {result['train_images']:,} training images {result['image_shape']}, batch "
            f"{result['batch_size']}, {result['epochs']} epoch(s) x {args.repeats}, on {result['device']}\n"
        )
        print(cnn_table(result))
    else:
        args.runs, args.epochs, args.batch_size = args.runs or [1, 10], args.epochs or 2, args.batch_size or 256
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
