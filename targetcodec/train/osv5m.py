"""The OpenStreetView-5M training job (section 4 "Larger-scale Experiment", Table 2, Appendix C).

The adaLN head (``targetcodec.osv5m.heads``) on cached StreetCLIP embeddings, trained for a fixed
number of examples (Appendix C: batch 32,768 until 100M examples are seen, the learning rate warmed
up linearly over 500 steps to 5e-5, then cosine decay: ``optim.learning_rate_factor``), AdamW with
weight decay 0.05, unit gradient clipping. Two ways to use several devices:

- *pack* (default): several seeds as one batched model (``PackedAdaLNHead``) on one device;
- *DDP*: one model (one or several seeds) over the processes ``torchrun`` starts, each taking an equal
  slice of every global batch; gradients are averaged by DistributedDataParallel, so the update is the
  one of the whole batch (gloo on CPUs, NCCL on GPUs).

Every step stays on the device (no host synchronisation: the learning rate is a Python number, the
batch indices come from a permutation kept on the device, clipping is tensor arithmetic); the host
waits only when logging, checkpointing and evaluating. Data order is a function of (seed, step), so
a job killed at any point resumes from its last checkpoint (``OSVState``, a ``pack.Checkpoint``) and
ends with the same numbers. The library's pieces do the rest, as for the tabular stage: the method
settings (``MethodSettings``), the run records (``train.records``) and the failure rule
(``train.failures``: a run without a finite validation MAE, or no better than predicting the
training mean, is recorded as failed and left out of the tables).

Run as ``python -m targetcodec.train.osv5m JOB.json`` or ``torchrun --nproc_per_node N -m
targetcodec.train.osv5m JOB.json`` (the workflow's rule does this); JOB.json holds ``Job``'s fields.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..osv5m.settings import OSVSettings
from ..pack import Checkpoint, TrainingStopped
from ..specs import MethodSettings

# The data order of a run comes from a generator of its own, seeded with seed + ORDER_SEED_OFFSET,
# apart from its initialisation's (the generator of the seed itself), as the tabular pack keeps its
# dropout apart with DROPOUT_SEED_OFFSET (the same offset: seeds are far below it).
ORDER_SEED_OFFSET = 1_000_003
CODEC_SAMPLE = 100_000  # training targets for the k-means++ initialisation and eq. (7)'s pre-training


def parse_label(label: str):
    """The method and k of a configuration label (``least_squares``, ``end_to_end-k625``)."""
    from ..methods import METHODS
    from .settings import Configuration

    c = Configuration.parse(label)
    return METHODS[c.method], c.k


# ----------------------------------------------------------------------------------- data order
class DataOrder:
    """Each run's stream of training rows: epoch e is the (e + 1)-th permutation its order generator
    (seed + ORDER_SEED_OFFSET) draws; step t takes positions [t B, (t + 1) B) of the concatenated
    epochs. Kept on the data's device; a resumed job draws the epochs before its first step again."""

    def __init__(self, n: int, seeds: list[int], device):
        self.n, self.device = n, device
        self.generators = [torch.Generator().manual_seed(s + ORDER_SEED_OFFSET) for s in seeds]
        self._perms: dict[int, torch.Tensor] = {}
        self._drawn = 0  # epochs drawn so far

    def _draw_until(self, epoch: int, keep_from: int) -> None:
        while self._drawn <= epoch:
            perm = torch.stack([torch.randperm(self.n, generator=g) for g in self.generators])
            if self._drawn >= keep_from:
                self._perms[self._drawn] = perm.to(self.device)
            self._drawn += 1
        for e in [e for e in self._perms if e < keep_from]:
            del self._perms[e]

    def indices(self, step: int, batch: int) -> torch.Tensor:
        """[R, batch] rows of step ``step``."""
        start = step * batch
        first, last = start // self.n, (start + batch - 1) // self.n
        self._draw_until(last, keep_from=first)
        parts, pos = [], start
        while pos < start + batch:
            e, offset = divmod(pos, self.n)
            take = min(self.n - offset, start + batch - pos)
            parts.append(self._perms[e][:, offset : offset + take])
            pos += take
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)


def embeddings_fit_on_device(nbytes: int, free_bytes: int) -> bool:
    """``data_on_device: auto`` on a GPU: the training embeddings go to the GPU when they take under
    half of its free memory (ours: the rest is for the head, its activations and the optimiser)."""
    return nbytes < 0.5 * free_bytes


class Batches:
    """Embedding rows of a batch on the training device: gathered on the device when the training data
    live there, else gathered in host memory (pinned on a GPU) and copied asynchronously, double-buffered.
    On the CPU, ``data_on_device: no`` takes the host path too (the same arithmetic, without pinning)."""

    def __init__(self, embeddings: np.ndarray, device: torch.device, mode: str, log=print):
        self.device = device
        host = torch.from_numpy(np.ascontiguousarray(embeddings))
        nbytes = host.numel() * host.element_size()
        self.on_device = mode == "yes" or (
            mode == "auto"
            and (device.type == "cpu" or embeddings_fit_on_device(nbytes, torch.cuda.mem_get_info(device)[0]))
        )
        self.pinned = not self.on_device and device.type == "cuda"
        if self.on_device:
            self.data = host.to(device)
            log(f"training embeddings on {device}: {host.shape[0]:,} x {host.shape[1]} {host.dtype}")
        else:
            self.data = host.pin_memory() if self.pinned else host
            self._buffers, self._events, self._turn = [None, None], [None, None], 0
            log(
                f"training embeddings in {'pinned ' if self.pinned else ''}host memory ({nbytes / 2**30:.1f} GiB), "
                f"gathered per batch and copied to {device}"
            )

    @property
    def order_device(self):
        """Where the batch indices live: with the data."""
        return self.data.device

    def get(self, idx: torch.Tensor) -> torch.Tensor:
        if self.on_device:
            return self.data[idx]
        i = self._turn
        self._turn = 1 - i
        if self._events[i] is not None:
            self._events[i].synchronize()  # the copy out of this buffer two batches ago
        flat = idx.reshape(-1).cpu()
        if self._buffers[i] is None or self._buffers[i].shape[0] != flat.shape[0]:
            buffer = torch.empty((flat.shape[0], self.data.shape[1]), dtype=self.data.dtype)
            self._buffers[i] = buffer.pin_memory() if self.pinned else buffer
        torch.index_select(self.data, 0, flat, out=self._buffers[i])
        out = self._buffers[i].to(self.device, non_blocking=self.pinned)
        if self.pinned:
            self._events[i] = torch.cuda.Event()
            self._events[i].record()
        return out.reshape(*idx.shape, -1)


@dataclass
class TrainingData:
    """The training split as the job uses it: coordinates (degrees), targets in the [0, 1] scale on
    the device, and the embeddings' batches."""

    coordinates: np.ndarray  # [n, 2] latitude, longitude
    y: np.ndarray  # [n, 2] scaled
    y_device: torch.Tensor
    batches: Batches

    @classmethod
    def load(cls, cache, s: OSVSettings, device, log) -> TrainingData:
        from ..data.sources.osv5m import scale_targets

        coordinates = cache.coordinates("train")
        y = scale_targets(coordinates, s.target_scaling, coordinates)
        batches = Batches(cache.embeddings("train"), device, s.data_on_device, log)
        return cls(coordinates, y, torch.as_tensor(y, dtype=torch.float32, device=device), batches)


# ----------------------------------------------------------------------------------- the model
class OSVModel(torch.nn.Module):
    """The head and the codec parameters a method trains (w, mu for end to end; mu for Baseline 4), per run."""

    def __init__(self, head, codec_params: dict[str, torch.Tensor]):
        super().__init__()
        self.head = head
        self.codec = torch.nn.ParameterDict({k: torch.nn.Parameter(v) for k, v in codec_params.items()})

    def forward(self, e):
        return self.head(e)


def make_codec(
    method, k: int | None, y_train: np.ndarray, s: OSVSettings, settings: MethodSettings, seed: int = 0, log=print
):
    """The codec a method starts from. Square k (625 = 25 x 25): the uniform grid over the unit square
    (section 4) placed as ``settings.grid`` says; other k: the k-means++ initialisation of section 3.3
    on up to 100,000 training targets. A method that needs the pre-trained codec (trained codec, or end
    to end with ``codec_init: pretrained``) pre-trains it (eq. 7) on them first."""
    from ..codec import initial_codec, pretrain_codec, unit_square_grid_codec

    if not method.uses_k:
        return None
    sample = y_train[np.random.default_rng(seed).permutation(len(y_train))[:CODEC_SAMPLE]]
    g = round(math.sqrt(k))
    codec = (
        unit_square_grid_codec(k, 2, s.init_lambda_sigma, settings.grid)
        if g * g == k
        else initial_codec(sample, k, s.init_lambda_sigma, seed)
    )
    if method.needs_pretrained_codec(settings):
        codec, report = pretrain_codec(
            codec,
            sample,
            alpha=settings.alpha,
            steps=s.codec_pretrain_steps,
            lr=s.codec_pretrain_lr,
            weight_decay=s.codec_weight_decay,
            weight_decay_mode=s.codec_weight_decay_mode,
            batch_size=s.codec_pretrain_batch_size,
            seed=seed,
            log=log,
        )
        log(f"pre-trained codec: auto-encoding error {report['final_autoencoding_error']:.3g}")
    return codec


def build_model(method, k, codec, seeds, cond_dim, s: OSVSettings, settings: MethodSettings, device, log) -> OSVModel:
    """The runs' heads (each seed's initial weights from its own generator) and the codec parameters
    the method trains, a copy per run."""
    from ..osv5m.heads import PackedAdaLNHead, parameter_count

    out = method.output_size(k, 2)
    gens = [torch.Generator().manual_seed(seed) for seed in seeds]
    head = PackedAdaLNHead(cond_dim, out, gens, s.width, s.depth, s.expansion, torch.float32, device)
    codec_params = {
        name: v.to(device, torch.float32).unsqueeze(0).repeat(len(seeds), *([1] * v.dim())).contiguous()
        for name, v in (method.trainable_codec(codec, settings).items() if codec is not None else [])
    }
    log(f"head: width {s.width}, depth {s.depth}, {parameter_count(head):,} parameters per run, output {out}")
    return OSVModel(head, codec_params)


def make_optimiser(model: OSVModel, s: OSVSettings):
    """AdamW for the head (weight decay ``osv5m.weight_decay``, Appendix C); the trained codec
    parameters take ``codec.weight_decay`` in ``codec.weight_decay_mode``, as in the tabular stage."""
    from ..optim import PackedAdam

    n_head, n_codec = len(list(model.head.parameters())), len(model.codec)
    return PackedAdam(
        list(model.parameters()),
        [s.weight_decay] * n_head + [s.codec_weight_decay] * n_codec,
        weight_decay_modes=["decoupled"] * n_head + [s.codec_weight_decay_mode] * n_codec,
    )


def distributed_model(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` wrapped for DDP: its gradients averaged over the job's processes in ``backward``."""
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model)


@dataclass
class OSVState(Checkpoint):
    """Everything a job needs to continue after ``step`` steps (the data order is a function of the
    step); saved and loaded as every ``Checkpoint`` (weights only, the fingerprint checked)."""

    fingerprint: str
    step: int
    params: list[torch.Tensor]  # the model's parameters, head then codec
    optimiser: dict  # PackedAdam.state_dict()


# ----------------------------------------------------------------------------------- the job
@dataclass
class Job:
    """One training job: a configuration (``least_squares``, ``end_to_end-k625``, ...) and its seeds.
    The workflow writes it from ``osv5m.settings.StagePlan.job``."""

    cache: str
    label: str
    seeds: list[int]
    settings: dict  # OSVSettings fields
    outputs: list[str]  # one run record (JSON) per seed
    predictions: list[str]  # one .npz of test predictions (degrees) per seed
    method: dict = field(default_factory=dict)  # MethodSettings fields (their defaults where missing)
    dataset: str = "osv5m"
    code: str = "OSV5M"
    checkpoint: str | None = None
    log: str | None = None
    device: str = "auto"
    threads: int = 1
    method_modules: list[str] = field(default_factory=list)
    workflow_dir: str = str(Path(__file__).resolve().parents[2])  # whose git commit the records name: this code's


_STOP_AFTER_STEP: int | None = None  # set only by stop_after_step (tests)


@contextlib.contextmanager
def stop_after_step(step: int):
    """For tests of resuming: every job run in the block stops as if killed right after ``step``
    (after checkpointing it) by raising ``pack.TrainingStopped``."""
    global _STOP_AFTER_STEP
    before, _STOP_AFTER_STEP = _STOP_AFTER_STEP, step
    try:
        yield
    finally:
        _STOP_AFTER_STEP = before


@dataclass(frozen=True)
class World:
    """The job's processes: one, or the ones torchrun started (its environment says which)."""

    size: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @classmethod
    def from_environment(cls, environ=os.environ) -> World:
        return cls(
            int(environ.get("WORLD_SIZE", "1")), int(environ.get("RANK", "0")), int(environ.get("LOCAL_RANK", "0"))
        )


def run_job(job: Job) -> list[dict] | None:
    """Train the job's seeds; write their run records and test predictions (rank 0, which returns the
    records; other ranks return None)."""
    from ..joblog import job_log
    from ..locks import checkpoint_lock
    from ..methods import import_method_modules

    world = World.from_environment()
    import_method_modules(job.method_modules)
    torch.set_num_threads(max(1, job.threads))
    log_path = job.log if world.rank == 0 or job.log is None else f"{job.log}.rank{world.rank}"
    with contextlib.ExitStack() as stack:
        log = print if log_path is None else stack.enter_context(job_log(log_path))
        if job.checkpoint and world.rank == 0:  # one live job per checkpoint; the ranks of this job share it
            stack.enter_context(checkpoint_lock(job.checkpoint, log))
        return _train(job, log, world)


def _train(job: Job, log, world: World) -> list[dict] | None:
    """The algorithm: start the processes, build the run (data, codec, head, optimiser), continue from
    the checkpoint if there is one, take the steps, evaluate and write the records, stop."""
    device = _start_processes(job, world, log)
    run = _Run(job, device, world, log)
    run.resume()
    run.take_steps()
    results = run.evaluate_and_write() if world.rank == 0 else None
    _stop_processes(world)
    return results


def _device(requested: str, world: World) -> torch.device:
    """``auto``: the process's GPU (LOCAL_RANK under torchrun), else the CPU; else as requested."""
    if requested == "auto":
        return torch.device("cuda", world.local_rank) if torch.cuda.is_available() else torch.device("cpu")
    return torch.device(requested)


def _start_processes(job: Job, world: World, log) -> torch.device:
    """The device of this process, and the process group of a DDP job (gloo on CPUs, NCCL on GPUs)."""
    s = OSVSettings(**job.settings)
    device = _device(job.device, world)
    if world.distributed:
        import torch.distributed as dist

        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        if device.type == "cuda":
            torch.cuda.set_device(device)
    if s.batch_size % world.size:
        raise ValueError(
            f"config key 'osv5m.batch_size': {s.batch_size} is not divisible by the {world.size} DDP processes"
        )
    torch.backends.cuda.matmul.allow_tf32 = s.tf32  # TF32 matrix products (GPUs that have them; no effect on CPUs)
    torch.backends.cudnn.allow_tf32 = s.tf32
    log(
        f"osv5m {job.label}, seeds {job.seeds}: device {device}, {world.size} process(es), "
        f"{s.total_steps} steps of {s.batch_size} ({s.examples:,} examples)"
    )
    return device


def _stop_processes(world: World) -> None:
    if world.distributed:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


class _Run:
    """A job's runs in training: the data, codec, model, optimiser and per-run hyper-parameters."""

    def __init__(self, job: Job, device: torch.device, world: World, log):
        from ..data.sources.osv5m import Cache

        self.job, self.device, self.world, self.log = job, device, world, log
        self.s = s = OSVSettings(**job.settings)
        self.settings = MethodSettings(**job.method)
        self.method, self.k = parse_label(job.label)
        self.started, self.t0 = dt.datetime.now(dt.timezone.utc), time.perf_counter()
        self.cache = Cache(job.cache)
        self.data = TrainingData.load(self.cache, s, device, log)
        codec = make_codec(self.method, self.k, self.data.y, s, self.settings, log=log)
        self.model = build_model(
            self.method, self.k, codec, job.seeds, self.data.batches.data.shape[1], s, self.settings, device, log
        )
        decoder = self.method.fixed_decoder(codec) if codec is not None else None
        self.fixed_decoder = decoder.to(device, torch.float32) if decoder is not None else None
        frozen = self.method.codec in ("hard", "gaussian", "pretrained")
        self.frozen_codec = codec if frozen else None  # psi(y) computed per batch
        self.trained = distributed_model(self.model) if world.distributed else self.model
        self.params = list(self.model.parameters())
        self.optimiser = make_optimiser(self.model, s)
        self.hp = {
            name: torch.full((len(job.seeds), 1), getattr(s, name), device=device)
            for name in ("lambda_kl", "lambda_auto", "lambda_pred")
        }
        self.order = DataOrder(len(self.data.y), job.seeds, self.data.batches.order_device)
        local = s.batch_size // world.size
        self.rows = slice(world.rank * local, (world.rank + 1) * local)  # this process's part of a batch
        self.autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=s.precision == "bf16")
        self.fingerprint = repr(
            (job.label, job.seeds, asdict(s.computed()), asdict(self.settings), len(self.data.y), world.size)
        )
        self.first_step = 0

    def resume(self) -> None:
        """Continue from the job's checkpoint, if it has one (of these settings: else an error naming it)."""
        path = self.job.checkpoint
        if not path or not Path(path).exists():
            return
        state = OSVState.load(path, self.device, self.fingerprint)
        with torch.no_grad():
            for p, saved in zip(self.params, state.params, strict=True):
                p.copy_(saved)
        self.optimiser.load_state_dict(state.optimiser)
        self.first_step = int(state.step)
        self.log(f"resumed from checkpoint {path} after step {self.first_step}")

    def learning_rate(self, step: int) -> torch.Tensor:
        """Every run's learning rate at ``step``: Appendix C's warm-up over ``warmup_steps`` to ``lr``,
        then cosine decay to 0 (``optim.learning_rate_factor``, the tabular stage's schedule)."""
        from ..optim import learning_rate_factor

        factor = learning_rate_factor(step, self.s.total_steps, "cosine", self.s.warmup_fraction)
        return torch.full((len(self.job.seeds),), self.s.lr * factor, device=self.device)

    def step(self, step: int) -> torch.Tensor:
        """One optimiser step on this process's part of global batch ``step``; the runs' losses [R]."""
        from ..optim import clip_grad_norm_per_run

        idx = self.order.indices(step, self.s.batch_size)[:, self.rows]
        xb = self.data.batches.get(idx)
        yb = self.data.y_device[idx.to(self.device)]
        with self.autocast:
            out = self.trained(xb).float()
        psi = (
            self.method.frozen_targets(self.frozen_codec, yb, self.settings) if self.frozen_codec is not None else None
        )
        loss = self.method.loss(out, yb, psi, dict(self.model.codec), self.hp, self.settings).mean(-1)
        loss.sum().backward()
        grads = [p.grad for p in self.params]
        clip_grad_norm_per_run(grads, self.s.grad_clip)
        self.optimiser.step(grads, self.learning_rate(step))
        for p in self.params:
            p.grad = None
        return loss.detach()

    def take_steps(self) -> None:
        """The steps from the first not yet taken to the last, with progress lines and checkpoints."""
        s, job = self.s, self.job
        start = time.perf_counter()
        running = torch.zeros(len(job.seeds), device=self.device)
        for step in range(self.first_step, s.total_steps):
            running += self.step(step)
            done = step + 1
            if done % s.log_every == 0 or done == s.total_steps:
                seconds = time.perf_counter() - start
                self.log(
                    f"step {done}/{s.total_steps}: mean training loss {running.mean().item() / s.log_every:.5g}, "
                    f"{(done - self.first_step) * s.batch_size / max(seconds, 1e-9):,.0f} examples/s"
                )
                running.zero_()
            stopping = done == _STOP_AFTER_STEP
            if job.checkpoint and self.world.rank == 0 and (done % s.checkpoint_every == 0 or stopping):
                if done < s.total_steps:
                    self.state(done).save(job.checkpoint)
            if stopping:
                if self.world.distributed:
                    torch.distributed.barrier()
                raise TrainingStopped(f"stopped after step {done} (stop_after_step)")

    def state(self, step: int) -> OSVState:
        return OSVState(
            fingerprint=self.fingerprint,
            step=step,
            params=[p.detach().clone() for p in self.params],
            optimiser=self.optimiser.state_dict(),
        )

    def evaluate_and_write(self) -> list[dict]:
        """Every run's metrics on validation and test, whether it failed, its run record and its test
        predictions; the checkpoint is deleted once they are written."""
        records = _evaluate_and_write(self)
        if self.job.checkpoint:
            Path(self.job.checkpoint).unlink(missing_ok=True)
        return records


@torch.no_grad()
def predict(model: OSVModel, method, fixed_decoder, embeddings: np.ndarray, batch: int, device) -> np.ndarray:
    """[R, n, 2] predictions in the [0, 1] target scale, ``batch`` rows at a time."""
    outs = []
    codec = {k: v.detach() for k, v in model.codec.items()}
    for i in range(0, len(embeddings), batch):
        e = torch.as_tensor(np.asarray(embeddings[i : i + batch]), device=device).float()
        outs.append(method.predict(model(e).float(), codec, fixed_decoder).cpu())
    return torch.cat(outs, dim=1).double().numpy()


def _evaluate_and_write(run: _Run) -> list[dict]:
    from ..data.sources.osv5m import scale_targets, unscale_targets
    from ..io import atomic_save_npz
    from ..metrics import regression_metrics
    from ..osv5m.geo import geolocation_metrics
    from ..specs import RunResult, RunSpec
    from .failures import check_finished_run, failure_of, mean_predictor_val_mae
    from .records import provenance, run_record, write_run
    from .settings import Configuration

    job, s, cache, log = run.job, run.s, run.cache, run.log
    train_coords, y_train = run.data.coordinates, run.data.y
    run.model.eval()
    metrics = [dict() for _ in job.seeds]
    scaled, test_pred = {}, None
    for split in ("val", "test"):
        coords = cache.coordinates(split)
        if len(coords) == 0:
            continue
        z = predict(run.model, run.method, run.fixed_decoder, cache.embeddings(split), s.eval_batch_size, run.device)
        scaled[split] = y = scale_targets(coords, s.target_scaling, train_coords)
        reg = regression_metrics(torch.as_tensor(y), torch.as_tensor(z), f"{split}_")
        latlon = unscale_targets(np.clip(z, 0, 1), s.target_scaling, train_coords)
        for r in range(len(job.seeds)):
            metrics[r].update({name: float(v[r]) for name, v in reg.items()})
            metrics[r].update(geolocation_metrics(coords, latlon[r], f"{split}_"))
        if split == "test":
            test_pred = latlon
    # the failure rule of the tabular stage (train/failures.py), on the validation split (the test
    # split where preparation left no validation rows)
    judged = "val" if "val" in scaled else "test"
    bound = mean_predictor_val_mae(y_train, scaled[judged])
    baseline = mean_predictor_val_mae(y_train, scaled["test"])
    wall = time.perf_counter() - run.t0
    prov = provenance(run.device, wall, list(job.seeds), run.started, job.workflow_dir)
    prov["processes"] = run.world.size
    configuration = Configuration.parse(job.label)
    epochs = math.ceil(s.total_steps * s.batch_size / len(y_train))  # passes over the training rows
    truth = cache.coordinates("test").astype(np.float32)
    records = []
    for r, seed in enumerate(job.seeds):
        failure = failure_of(metrics[r][f"{judged}_mae"], bound)
        check_finished_run(metrics[r], failure, f"osv5m {job.label}, seed {seed}")
        result = RunResult(
            spec=RunSpec(
                seed=seed, lr=s.lr, lambda_kl=s.lambda_kl, lambda_auto=s.lambda_auto, lambda_pred=s.lambda_pred
            ),
            metrics=metrics[r],
            epochs_trained=epochs,
            best_epoch=epochs
            if math.isfinite(metrics[r][f"{judged}_mae"])
            else 0,  # the last weights: no early stopping
            val_mae_history=[metrics[r][f"{judged}_mae"]],
        )
        record = run_record(
            result,
            dataset=job.dataset,
            code=job.code,
            configuration=configuration,
            settings={"osv5m": asdict(s), "method": asdict(run.settings), "device_requested": job.device},
            provenance=prov,
            failure=failure,
            mean_predictor_val_mae=bound,
        ) | {"steps": s.total_steps, "examples": s.examples, "training_mean_test_mae": baseline}
        write_run(job.outputs[r], record)
        atomic_save_npz(job.predictions[r], prediction=test_pred[r].astype(np.float32), truth=truth)
        log(
            f"seed {seed}: test MAE {metrics[r]['test_mae']:.4f} (training mean {baseline:.4f}), "
            f"median error {metrics[r]['test_median_km']:,.0f} km, GeoScore {metrics[r]['test_geoscore']:,.0f}"
            + (f", FAILED: {failure}" if failure else "")
        )
        records.append(record)
    return records


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        raise SystemExit("usage: python -m targetcodec.train.osv5m JOB.json (or the JSON itself)")
    spec = json.loads(argv[0] if argv[0].lstrip().startswith("{") else Path(argv[0]).read_text())
    run_job(Job(**spec))


if __name__ == "__main__":
    main()
