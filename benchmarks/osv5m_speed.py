"""Speed and memory of the OpenStreetView-5M stage (a benchmark, not a test).

Measures training examples/s of the adaLN head (width 512, 12 blocks, 1024-d input by default) at
batch 32,768 for a pack of R seeds, its peak memory, the prepare step's rows/s on a stand-in, and
projects the time for 100M examples (Appendix C) per seed. On CPUs a step at batch 32,768 takes
minutes: ``--batch`` can be lowered there (examples/s is then measured at that batch).

    python benchmarks/osv5m_speed.py                       # CPU
    python benchmarks/osv5m_speed.py --device cuda --runs 1 5 --precision bf16
    python benchmarks/osv5m_speed.py --device cuda --runs 1 --ddp 4      # and one seed under DDP on 4 GPUs
"""

from __future__ import annotations

import argparse
import datetime
import resource
import tempfile
import time
from pathlib import Path

import torch


def train_speed(
    device: str,
    runs: int,
    batch: int,
    steps: int,
    width: int,
    depth: int,
    precision: str,
    method: str,
    distributed: bool = False,
) -> dict:
    """One step's time of a pack of ``runs`` seeds at ``batch`` (per seed). ``distributed``: inside
    an initialised process group, as one DDP process of the training job (its share of the batch)."""
    from targetcodec.codec import unit_square_grid_codec
    from targetcodec.methods import METHODS
    from targetcodec.optim import PackedAdamW, clip_grad_norm_per_run
    from targetcodec.osv5m.heads import PackedAdaLNHead
    from targetcodec.specs import MethodSettings
    from targetcodec.train.osv5m import OSVModel

    dev = torch.device(device)
    m = METHODS[method]
    k = 625 if m.uses_k else None
    codec = unit_square_grid_codec(625) if m.uses_k else None
    head = PackedAdaLNHead(
        1024, m.output_size(k, 2), [torch.Generator().manual_seed(s) for s in range(runs)], width, depth, device=dev
    )
    params_codec = {
        n: v.float().to(dev).unsqueeze(0).repeat(runs, *([1] * v.dim()))
        for n, v in (m.trainable_codec(codec, MethodSettings()).items() if codec else [])
    }
    model = OSVModel(head, params_codec)
    world = 1
    trained = model
    if distributed:
        from torch.nn.parallel import DistributedDataParallel

        world = torch.distributed.get_world_size()
        trained = DistributedDataParallel(model)
    local = batch // world  # each process takes an equal slice of every batch, as the training job does
    params = list(model.parameters())
    opt = PackedAdamW(params, [0.05] * len(params))
    hp = {
        n: torch.full((runs, 1), v, device=dev)
        for n, v in (("lambda_kl", 0.068), ("lambda_auto", 1.0), ("lambda_pred", 1.0))
    }
    data = torch.randn(max(batch * 2, 65536), 1024, device=dev, dtype=torch.float16)
    y = torch.rand(len(data), 2, device=dev)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    lr = torch.full((runs,), 5e-5, device=dev)

    def step():
        idx = torch.randint(len(data), (runs, local), device=dev)
        with autocast:
            out = trained(data[idx]).float()
        loss = m.loss(out, y[idx], None, dict(model.codec), hp, MethodSettings()).mean(-1).sum()
        loss.backward()
        grads = [p.grad for p in params]
        clip_grad_norm_per_run(grads, 1.0)
        opt.step(grads, lr)
        for p in params:
            p.grad = None

    step()  # warm-up
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    seconds = (time.perf_counter() - start) / steps
    per_seed = batch / seconds  # examples/s of each seed of the pack
    peak = (
        torch.cuda.max_memory_allocated(dev) / 2**30
        if dev.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    )
    return {
        "device": device,
        "parallel": f"ddp over {world} process(es)" if distributed else "pack",
        "processes": world,
        "runs": runs,
        "batch": batch,
        "method": method,
        "precision": precision,
        "seconds_per_step": seconds,
        "examples_per_s_per_seed": per_seed,
        "examples_per_s_total": per_seed * runs,
        "peak_memory_gib": peak,
        "hours_for_100M_examples_per_pack": 1e8 / per_seed / 3600,
    }


def _ddp_process(rank: int, world: int, store: str, device_type: str, kwargs: dict, out: str) -> None:
    import json

    import torch.distributed as dist

    cuda = device_type == "cuda"
    if cuda:
        torch.cuda.set_device(rank)
        torch.backends.cuda.matmul.allow_tf32 = True
    else:
        torch.set_num_threads(1)
    dist.init_process_group(
        "nccl" if cuda else "gloo",
        init_method=f"file://{store}",
        rank=rank,
        world_size=world,
        timeout=datetime.timedelta(minutes=2),  # a process group that cannot form fails instead of hanging
    )
    try:
        result = train_speed(f"cuda:{rank}" if cuda else "cpu", distributed=True, **kwargs)
        if rank == 0:
            Path(out).write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


def ddp_train_speed(device_type: str, processes: int, **kwargs) -> dict:
    """``train_speed`` of one seed under DistributedDataParallel over ``processes`` processes, one
    per GPU (NCCL) or on the CPU (gloo), started as torchrun would: rank 0's measurement."""
    import json

    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rank0.json"
        mp.start_processes(
            _ddp_process,
            args=(processes, str(Path(tmp) / "store"), device_type, dict(kwargs, runs=1), str(out)),
            nprocs=processes,
            start_method="spawn",
        )
        return json.loads(out.read_text())


def prepare_speed(rows: int, dim: int) -> dict:
    from targetcodec.data.osv5m_standin import write_standin
    from targetcodec.data.sources.osv5m import prepare

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for layout in ("wds", "csv"):
            root = write_standin(Path(tmp) / layout, layout, train=rows, test=rows // 10, dim=dim, shard_size=2000)
            start = time.perf_counter()
            prepare(root, Path(tmp) / f"cache-{layout}")
            out[layout] = (rows + rows // 10) / (time.perf_counter() - start)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--runs", type=int, nargs="+", default=[1, 2], help="seeds per pack to measure")
    p.add_argument("--batch", type=int, default=32768)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--depth", type=int, default=12)
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--method", default="end_to_end")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument(
        "--ddp", type=int, default=0, help="also one seed under DDP over this many processes (GPUs; gloo on CPUs)"
    )
    p.add_argument("--prepare-rows", type=int, default=20000, help="stand-in rows for the prepare speed (0: skip)")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{torch.cuda.get_device_name(0) if a.device.startswith('cuda') else 'CPU'}"
    )
    for runs in a.runs:
        r = train_speed(a.device, runs, a.batch, a.steps, a.width, a.depth, a.precision, a.method)
        print(
            f"pack of {runs} ({r['method']}, {r['precision']}, batch {r['batch']:,}): {r['seconds_per_step']:.3f} s/step, "
            f"{r['examples_per_s_per_seed']:,.0f} examples/s per seed ({r['examples_per_s_total']:,.0f} in all), "
            f"peak memory {r['peak_memory_gib']:.1f} GiB, 100M examples: {r['hours_for_100M_examples_per_pack']:.2f} h per pack "
            f"({r['hours_for_100M_examples_per_pack'] / runs:.2f} h per seed)"
        )
    if a.ddp:
        r = ddp_train_speed(
            torch.device(a.device).type,
            a.ddp,
            batch=a.batch,
            steps=a.steps,
            width=a.width,
            depth=a.depth,
            precision=a.precision,
            method=a.method,
        )
        print(
            f"one seed, {r['parallel']} ({r['method']}, {r['precision']}, batch {r['batch']:,}): "
            f"{r['seconds_per_step']:.3f} s/step, {r['examples_per_s_per_seed']:,.0f} examples/s, "
            f"100M examples: {r['hours_for_100M_examples_per_pack']:.2f} h"
        )
    if a.prepare_rows:
        for layout, rate in prepare_speed(a.prepare_rows, 1024).items():
            print(
                f"prepare ({layout} layout, 1024-d stand-in): {rate:,.0f} rows/s; 5.1M rows: {5.1e6 / rate / 3600:.2f} h"
            )


if __name__ == "__main__":
    main()
