"""The OpenStreetView-5M training job (section 4 "Larger-scale Experiment", Table 2, Appendix C).

The adaLN head (``targetcodec.heads``) on cached StreetCLIP embeddings, trained for a fixed number of
examples (Appendix C: batch 32,768 until 100M examples are seen, the learning rate warmed up
linearly over 500 steps to 5e-5, then cosine decay), AdamW with weight decay 0.05, unit gradient
clipping. Two ways to use several devices:

- *pack* (default): several seeds as one batched model (``PackedAdaLNHead``) on one device;
- *DDP*: one model (one or several seeds) over the processes ``torchrun`` starts, each taking an equal
  slice of every global batch; gradients are averaged by DistributedDataParallel, so the update is the
  one of the whole batch (gloo on CPUs, NCCL on GPUs).

Every step stays on the device (no host synchronisation: the learning rate is a Python number, the
batch indices come from a permutation kept on the device, clipping is tensor arithmetic); the host
waits only when logging, checkpointing and evaluating. Data order is a function of (seed, step), so
a job killed at any point resumes from its last checkpoint and ends with the same numbers.

Run as ``python -m targetcodec.train.osv5m JOB.json`` or ``torchrun --nproc_per_node N -m
targetcodec.train.osv5m JOB.json`` (the workflow's rule does this); JOB.json holds ``job_spec``'s fields.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

ORDER_SEED_STRIDE = 1_000_003


@dataclass(frozen=True)
class OSVSettings:
    """Settings of the OSV5M stage (config key ``osv5m``); see config.yaml for which are the paper's."""

    width: int = 512
    depth: int = 12
    expansion: int = 4
    batch_size: int = 32768
    examples: int = 100_000_000
    lr: float = 5e-5
    warmup_steps: int = 500
    weight_decay: float = 0.05
    codec_weight_decay: float = 1e-4
    grad_clip: float = 1.0
    precision: str = "fp32"  # or "bf16": autocast of the head's matrix products
    tf32: bool = True
    target_scaling: str = "fixed"
    data_on_device: str = "auto"  # auto, yes (device), no (pinned host memory + asynchronous copies)
    checkpoint_every: int = 100
    log_every: int = 50
    eval_batch_size: int = 8192
    lambda_kl: float = 0.068
    lambda_auto: float = 1.0
    lambda_pred: float = 1.0
    alpha: float = 1e-6
    init_lambda_sigma: float = 1.0
    grid: str = "endpoints"  # the 25 x 25 grid's placement, as the 1-D grid's (config key codec.grid)
    soft_binning_lambda_sigma: float = 0.5
    huber_delta: float = 1.0
    codec_pretrain_steps: int = 2000  # trained-codec method: eq. (7) on up to 100,000 training targets
    codec_pretrain_lr: float = 1e-2

    @property
    def total_steps(self) -> int:
        """Steps until ``examples`` training examples are seen: ceil(100M / 32,768) = 3,052 (Appendix C)."""
        return math.ceil(self.examples / self.batch_size)

    @classmethod
    def from_config(cls, config: dict) -> OSVSettings:
        o = config["osv5m"]
        head = o["head"]
        e2e = config["end_to_end"]
        return cls(
            width=head["width"],
            depth=head["depth"],
            expansion=head["expansion"],
            **{
                k: o[k]
                for k in (
                    "batch_size",
                    "examples",
                    "lr",
                    "warmup_steps",
                    "weight_decay",
                    "grad_clip",
                    "precision",
                    "tf32",
                    "target_scaling",
                    "data_on_device",
                    "checkpoint_every",
                    "log_every",
                    "eval_batch_size",
                )
            },
            codec_weight_decay=config["codec"]["weight_decay"],
            lambda_kl=_number(e2e["lambda_kl"], "end_to_end.lambda_kl"),
            lambda_auto=_number(e2e["lambda_auto"], "end_to_end.lambda_auto"),
            lambda_pred=e2e["lambda_pred"],
            alpha=config["codec"]["alpha"],
            init_lambda_sigma=config["codec"]["init_lambda_sigma"],
            grid=config["codec"]["grid"],
            soft_binning_lambda_sigma=config["codec"]["soft_binning_lambda_sigma"],
            huber_delta=config["huber_delta"],
            codec_pretrain_steps=config["codec"]["pretrain"]["steps"],
            codec_pretrain_lr=config["codec"]["pretrain"]["lr"],
        )


def _number(value, key):
    if value == "selected":
        raise ValueError(
            f"config key '{key}': 'selected' is not available in the osv5m stage (no sweeps at this scale); give a number"
        )
    return float(value)


def parse_label(label: str):
    """The method and k of a configuration label (``least_squares``, ``end_to_end-k625``)."""
    from ..methods import METHODS
    from .settings import Configuration

    c = Configuration.parse(label)
    return METHODS[c.method], c.k


def warmup_cosine(step: int, warmup_steps: int, total_steps: int) -> float:
    """Appendix C: linear warm-up over ``warmup_steps`` to the maximum, then cosine decay to 0 at the last step."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


# ----------------------------------------------------------------------------------- data order
class DataOrder:
    """Each run's stream of training rows: epoch e is a permutation drawn from (seed, e); step t takes
    positions [t B, (t + 1) B) of the concatenated epochs. Kept on the data's device."""

    def __init__(self, n: int, seeds: list[int], device):
        self.n, self.seeds, self.device = n, seeds, device
        self._epoch, self._perms = None, None

    def _perm(self, epoch: int) -> torch.Tensor:
        return torch.stack(
            [
                torch.randperm(self.n, generator=torch.Generator().manual_seed(s * ORDER_SEED_STRIDE + epoch))
                for s in self.seeds
            ]
        ).to(self.device)

    def indices(self, step: int, batch: int) -> torch.Tensor:
        """[R, batch] rows of step ``step``."""
        start = step * batch
        first, last = start // self.n, (start + batch - 1) // self.n
        if self._epoch != first:
            self._perms = {e: self._perm(e) for e in range(first, last + 1)}
            self._epoch = first
        for e in range(first, last + 1):
            if e not in self._perms:
                self._perms[e] = self._perm(e)
        parts, pos = [], start
        while pos < start + batch:
            e, offset = divmod(pos, self.n)
            take = min(self.n - offset, start + batch - pos)
            parts.append(self._perms[e][:, offset : offset + take])
            pos += take
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)


class Batches:
    """Embedding rows of a batch on the training device: gathered on the device when the training data
    live there, else gathered in pinned host memory and copied asynchronously (double-buffered)."""

    def __init__(self, embeddings: np.ndarray, device: torch.device, mode: str, log=print):
        self.device = device
        host = torch.from_numpy(np.ascontiguousarray(embeddings))
        on_device = device.type != "cpu" and (mode == "yes" or (mode == "auto" and _fits(host, device)))
        if device.type == "cpu" or on_device:
            self.data, self.pinned = host.to(device), False
            log(f"training embeddings on {device}: {host.shape[0]:,} x {host.shape[1]} {host.dtype}")
        else:
            self.data, self.pinned = host.pin_memory(), True
            self._buffers, self._events, self._turn = [None, None], [None, None], 0
            log(
                f"training embeddings in pinned host memory ({host.numel() * host.element_size() / 2**30:.1f} GiB), asynchronous copies"
            )

    def get(self, idx: torch.Tensor) -> torch.Tensor:
        if not self.pinned:
            return self.data[idx]
        i = self._turn
        self._turn = 1 - i
        if self._events[i] is not None:
            self._events[i].synchronize()  # the copy out of this buffer two batches ago
        flat = idx.reshape(-1).cpu()
        if self._buffers[i] is None or self._buffers[i].shape[0] != flat.shape[0]:
            self._buffers[i] = torch.empty((flat.shape[0], self.data.shape[1]), dtype=self.data.dtype).pin_memory()
        torch.index_select(self.data, 0, flat, out=self._buffers[i])
        out = self._buffers[i].to(self.device, non_blocking=True)
        self._events[i] = torch.cuda.Event()
        self._events[i].record()
        return out.reshape(*idx.shape, -1)


def _fits(host: torch.Tensor, device: torch.device) -> bool:
    free, _ = torch.cuda.mem_get_info(device)
    return host.numel() * host.element_size() < 0.5 * free


# ----------------------------------------------------------------------------------- the model
class OSVModel(torch.nn.Module):
    """The head and the codec parameters a method trains (w, mu for end to end; mu for Baseline 4), per run."""

    def __init__(self, head, codec_params: dict[str, torch.Tensor]):
        super().__init__()
        self.head = head
        self.codec = torch.nn.ParameterDict({k: torch.nn.Parameter(v) for k, v in codec_params.items()})

    def forward(self, e):
        return self.head(e)


def make_codec(method, k: int | None, y_train: np.ndarray, s: OSVSettings, seed: int = 0, log=print):
    """The codec a method starts from. Square k (625 = 25 x 25): the uniform grid over the unit square
    (section 4); other k: the k-means++ initialisation of section 3.3 on up to 100,000 training targets;
    the trained-codec method pre-trains it (eq. 7) on them first."""
    from ..codec import initial_codec, pretrain_codec, unit_square_grid_codec

    if not method.uses_k:
        return None
    sample = y_train[np.random.default_rng(seed).permutation(len(y_train))[:100_000]]
    g = round(math.sqrt(k))
    codec = (
        unit_square_grid_codec(k, 2, s.init_lambda_sigma, s.grid)
        if g * g == k
        else initial_codec(sample, k, s.init_lambda_sigma, seed)
    )
    if method.needs_pretrained_codec(_method_settings(s)):
        codec, report = pretrain_codec(
            codec,
            sample,
            alpha=s.alpha,
            steps=s.codec_pretrain_steps,
            lr=s.codec_pretrain_lr,
            weight_decay=s.codec_weight_decay,
            log=log,
        )
        log(f"pre-trained codec: auto-encoding error {report['final_autoencoding_error']:.3g}")
    return codec


def _method_settings(s: OSVSettings):
    from ..specs import MethodSettings

    return MethodSettings(
        huber_delta=s.huber_delta, soft_binning_lambda_sigma=s.soft_binning_lambda_sigma, alpha=s.alpha, grid=s.grid
    )


# ----------------------------------------------------------------------------------- the job
@dataclass
class Job:
    """One training job: a configuration (``least_squares``, ``end_to_end-k625``, ...) and its seeds."""

    cache: str
    label: str
    seeds: list[int]
    settings: dict
    outputs: list[str]  # one result JSON per seed
    predictions: list[str]  # one .npz of test predictions (degrees) per seed
    checkpoint: str | None = None
    log: str | None = None
    device: str = "auto"
    threads: int = 1
    stop_after_step: int | None = None  # tests: stop there (after checkpointing) as if killed
    extra: dict = field(default_factory=dict)


def run_job(job: Job) -> list[dict] | None:
    """Train the job's seeds; write their result files and test predictions (rank 0). None if stopped."""
    from ..joblog import job_log

    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    rank = int(os.environ.get("RANK", "0"))
    torch.set_num_threads(max(1, job.threads))
    log_path = job.log if rank == 0 or job.log is None else f"{job.log}.rank{rank}"
    if log_path is None:
        return _train(job, print, distributed, rank)
    with job_log(log_path) as log:
        return _train(job, log, distributed, rank)


def _device(job: Job, distributed: bool) -> torch.device:
    if job.device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) if distributed else 0)
        return torch.device("cpu")
    return torch.device(job.device)


def _train(job: Job, log, distributed: bool, rank: int):
    from ..data.sources.osv5m import Cache, scale_targets
    from ..heads import PackedAdaLNHead, parameter_count
    from ..optim import PackedAdamW, clip_grad_norm_per_run

    s = OSVSettings(**job.settings)
    method, k = parse_label(job.label)
    device = _device(job, distributed)
    world = 1
    if distributed:
        import torch.distributed as dist

        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        world = dist.get_world_size()
        if device.type == "cuda":
            torch.cuda.set_device(device)
    if s.batch_size % world:
        raise ValueError(f"config key 'osv5m.batch_size': {s.batch_size} is not divisible by the {world} DDP processes")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = s.tf32
        torch.backends.cudnn.allow_tf32 = s.tf32
    log(
        f"osv5m {job.label}, seeds {job.seeds}: device {device}, {world} process(es), "
        f"{s.total_steps} steps of {s.batch_size} ({s.examples:,} examples)"
    )

    cache = Cache(job.cache)
    train_coords = cache.coordinates("train")
    y_train = scale_targets(train_coords, s.target_scaling, train_coords)
    emb_train = cache.embeddings("train")
    batches = Batches(emb_train, device, s.data_on_device, log)
    del emb_train
    dtype = torch.float32
    y_train_t = torch.as_tensor(y_train, dtype=dtype, device=device)

    codec = make_codec(method, k, y_train, s, log=log)
    R = len(job.seeds)
    gens = [torch.Generator().manual_seed(seed) for seed in job.seeds]
    head = PackedAdaLNHead(
        batches.data.shape[1], method.output_size(k, 2), gens, s.width, s.depth, s.expansion, dtype, device
    )
    codec_params = {
        name: v.to(device, dtype).unsqueeze(0).repeat(R, *([1] * v.dim())).contiguous()
        for name, v in (method.trainable_codec(codec, _method_settings(s)).items() if codec is not None else [])
    }
    model = OSVModel(head, codec_params)
    log(
        f"head: width {s.width}, depth {s.depth}, {parameter_count(head):,} parameters per run, output {method.output_size(k, 2)}"
    )
    fixed_decoder = (
        method.fixed_decoder(codec).to(device, dtype)
        if codec is not None and method.fixed_decoder(codec) is not None
        else None
    )
    frozen_codec = codec if method.codec in ("hard", "gaussian", "pretrained") else None  # psi(y) per batch
    trained = DDP(model) if distributed else model
    params = list(model.parameters())
    n_head = len(list(model.head.parameters()))
    optimiser = PackedAdamW(params, [s.weight_decay] * n_head + [s.codec_weight_decay] * (len(params) - n_head))
    hp = {
        name: torch.full((R, 1), getattr(s, name), dtype=dtype, device=device)
        for name in ("lambda_kl", "lambda_auto", "lambda_pred")
    }
    msettings = _method_settings(s)
    order = DataOrder(len(y_train), job.seeds, batches.data.device if not batches.pinned else "cpu")
    local = s.batch_size // world
    lo, hi = rank * local, (rank + 1) * local
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=s.precision == "bf16")
    fingerprint = repr((job.label, job.seeds, asdict(s), len(y_train), world))

    first_step = 0
    if job.checkpoint and Path(job.checkpoint).exists():
        state = torch.load(job.checkpoint, map_location=device, weights_only=False)
        if state["fingerprint"] != fingerprint:
            raise RuntimeError(
                f"checkpoint {job.checkpoint} belongs to another configuration; delete it to start again"
            )
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        first_step = state["step"]
        log(f"resumed from checkpoint {job.checkpoint} after step {first_step}")

    start = time.perf_counter()
    running = torch.zeros(R, dtype=dtype, device=device)
    for step in range(first_step, s.total_steps):
        idx = order.indices(step, s.batch_size)[:, lo:hi]
        xb = batches.get(idx)
        yb = y_train_t[idx.to(device)]
        with autocast:
            out = trained(xb).float()
        psi = method.frozen_targets(frozen_codec, yb, msettings) if frozen_codec is not None else None
        per_sample = method.loss(out, yb, psi, dict(model.codec), hp, msettings)
        loss = per_sample.mean(-1)
        loss.sum().backward()
        grads = [p.grad for p in params]
        clip_grad_norm_per_run(grads, s.grad_clip)
        optimiser.step(
            grads, torch.full((R,), s.lr * warmup_cosine(step, s.warmup_steps, s.total_steps), device=device)
        )
        for p in params:
            p.grad = None
        running += loss.detach()
        done = step + 1
        if done % s.log_every == 0 or done == s.total_steps:
            seconds = time.perf_counter() - start
            log(
                f"step {done}/{s.total_steps}: mean training loss {running.mean().item() / s.log_every:.5g}, "
                f"{(done - first_step) * s.batch_size / max(seconds, 1e-9):,.0f} examples/s"
            )
            running.zero_()
        if (
            job.checkpoint
            and rank == 0
            and (done % s.checkpoint_every == 0 or done == job.stop_after_step)
            and done < s.total_steps
        ):
            _save_checkpoint(job.checkpoint, model, optimiser, done, fingerprint)
        if job.stop_after_step is not None and done == job.stop_after_step:
            if distributed:
                torch.distributed.barrier()
            return None

    results = None
    if rank == 0:
        results = _evaluate_and_write(job, model, method, fixed_decoder, cache, train_coords, s, device, log)
        if job.checkpoint:
            Path(job.checkpoint).unlink(missing_ok=True)
    if distributed:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return results


def DDP(model):
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model)


@torch.no_grad()
def predict(model: OSVModel, method, fixed_decoder, embeddings: np.ndarray, batch: int, device) -> np.ndarray:
    """[R, n, 2] predictions in the [0, 1] target scale, ``batch`` rows at a time."""
    outs = []
    codec = {k: v.detach() for k, v in model.codec.items()}
    for i in range(0, len(embeddings), batch):
        e = torch.as_tensor(np.asarray(embeddings[i : i + batch]), device=device).float()
        outs.append(method.predict(model(e).float(), codec, fixed_decoder).cpu())
    return torch.cat(outs, dim=1).double().numpy()


def _evaluate_and_write(job, model, method, fixed_decoder, cache, train_coords, s, device, log):
    from ..data.sources.osv5m import scale_targets, unscale_targets
    from ..geo import geolocation_metrics
    from ..io import atomic_path, atomic_write_json
    from ..metrics import regression_metrics

    model.eval()
    metrics = [dict() for _ in job.seeds]
    test_pred = None
    for split in ("val", "test"):
        coords = cache.coordinates(split)
        if len(coords) == 0:
            continue
        z = predict(model, method, fixed_decoder, cache.embeddings(split), s.eval_batch_size, device)
        y = scale_targets(coords, s.target_scaling, train_coords)
        reg = regression_metrics(torch.as_tensor(y), torch.as_tensor(z), f"{split}_")
        latlon = unscale_targets(np.clip(z, 0, 1), s.target_scaling, train_coords)
        for r in range(len(job.seeds)):
            metrics[r].update({name: float(v[r]) for name, v in reg.items()})
            metrics[r].update(geolocation_metrics(coords, latlon[r], f"{split}_"))
        if split == "test":
            test_pred = latlon
    mean_train = scale_targets(train_coords, s.target_scaling, train_coords).mean(0)
    test_y = scale_targets(cache.coordinates("test"), s.target_scaling, train_coords)
    baseline = float(np.abs(test_y - mean_train).mean())
    results = []
    for r, seed in enumerate(job.seeds):
        record = {
            "dataset": "osv5m",
            "configuration": job.label,
            "method": method.name,
            "seed": seed,
            "metrics": metrics[r],
            "training_mean_test_mae": baseline,
            "settings": asdict(OSVSettings(**job.settings)),
            "steps": s.total_steps,
        }
        atomic_write_json(job.outputs[r], record)
        with atomic_path(job.predictions[r]) as tmp:
            with open(tmp, "wb") as f:
                np.savez(
                    f, prediction=test_pred[r].astype(np.float32), truth=cache.coordinates("test").astype(np.float32)
                )
        log(
            f"seed {seed}: test MAE {metrics[r]['test_mae']:.4f} (training mean {baseline:.4f}), "
            f"median error {metrics[r]['test_median_km']:,.0f} km, GeoScore {metrics[r]['test_geoscore']:,.0f}"
        )
        results.append(record)
    return results


def _save_checkpoint(path, model, optimiser, step, fingerprint):
    from ..io import atomic_path

    with atomic_path(path) as tmp:
        torch.save(
            {
                "model": model.state_dict(),
                "optimiser": optimiser.state_dict(),
                "step": step,
                "fingerprint": fingerprint,
            },
            tmp,
        )


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        raise SystemExit("usage: python -m targetcodec.train.osv5m JOB.json (or the JSON itself)")
    spec = json.loads(argv[0] if argv[0].lstrip().startswith("{") else Path(argv[0]).read_text())
    run_job(Job(**spec))


if __name__ == "__main__":
    main()
