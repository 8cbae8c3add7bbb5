"""Train a pack of runs (seeds and sweep values of one method, k and dataset) as one batched model.

Each run keeps its own initialisation, data order, dropout masks, learning rate and lambdas,
gradient clipping, early stopping and best checkpoint; the pack only shares the arithmetic.
Runs that stop early leave the computation: the pack is compacted to the runs still training, which
changes no run's numbers (tests/test_pack_equivalence.py) and makes a pack's later epochs cheaper.
docs/performance.md has the measured gain (benchmarks/pack_speed.py, benchmarks/grid.py).
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .codec import Codec, initial_codec
from .data.split import SplitData
from .methods import Method
from .metrics import regression_metrics
from .nn import PackedNetwork
from .optim import PackedAdam, clip_grad_norm_per_run, learning_rate_factor
from .specs import Architecture, MethodSettings, RunResult, RunSpec, TrainingConfig

DROPOUT_SEED_OFFSET = 1_000_003  # dropout masks use a second stream of the run's seed


def codec_for_method(
    method: Method,
    y_train: np.ndarray,
    k: int | None,
    settings: MethodSettings,
    pretrained: Codec | None = None,
    init_lambda_sigma: float = 1.0,
    seed: int = 0,
) -> Codec | None:
    """The codec a method starts from: none (regression), the pre-trained one (eq. 7), or the
    initialisation of section 3.3 (grid for m = 1, k-means++ for m > 1)."""
    if not method.uses_k:
        return None
    if method.needs_pretrained_codec(settings):
        if pretrained is None:
            raise ValueError(f"method {method.name!r} needs a pre-trained codec")
        return pretrained
    return initial_codec(y_train, k, lambda_sigma=init_lambda_sigma, seed=seed, grid=settings.grid)


_STOP_AFTER_EPOCH: int | None = None  # set only by stop_after_epoch (tests)


class TrainingStopped(RuntimeError):
    """A pack stopped by ``stop_after_epoch``, as if its job had been killed."""


@contextlib.contextmanager
def stop_after_epoch(epoch: int):
    """For tests of resuming: every ``train_pack`` in the block stops as if its job were killed right
    after ``epoch`` (after that epoch's checkpoint, if one was due) by raising ``TrainingStopped``."""
    global _STOP_AFTER_EPOCH
    before, _STOP_AFTER_EPOCH = _STOP_AFTER_EPOCH, epoch
    try:
        yield
    finally:
        _STOP_AFTER_EPOCH = before


class Checkpoint:
    """Save and load for a training state: a dataclass of tensors, plain lists and numbers only, with a
    ``fingerprint`` field that names the training it belongs to (``PackState``, the OSV5M stage's
    ``OSVState``). Nothing in a checkpoint is ever unpickled."""

    fingerprint: str

    def save(self, path) -> None:
        """Write the state to ``path`` atomically (a killed job never leaves half a checkpoint)."""
        from .io import atomic_path

        with atomic_path(path) as tmp:
            torch.save({name: getattr(self, name) for name in self.__dataclass_fields__}, tmp)

    @classmethod
    def load(cls, path, device, fingerprint: str):
        """The state saved at ``path``, if it is one of the training ``fingerprint`` names; else an
        error that names the file. weights_only: tensors and plain containers only, never code (a
        checkpoint may come from anywhere)."""
        try:
            state = torch.load(path, map_location=device, weights_only=True)
        except Exception as e:
            raise RuntimeError(
                f"checkpoint {path} cannot be read as a checkpoint of this workflow (damaged, or holding "
                f"more than tensors; nothing in it was run): {type(e).__name__}: {e}; delete it to start "
                f"again"
            ) from e
        if not isinstance(state, dict) or state.get("fingerprint") != fingerprint:
            raise RuntimeError(f"checkpoint {path} belongs to another configuration; delete it to start again")
        try:
            return cls(**state)
        except TypeError as e:  # well-formed, but not this state's fields
            raise RuntimeError(
                f"checkpoint {path} cannot be read as a checkpoint of this workflow ({e}); delete it to start again"
            ) from e


@dataclass
class PackState(Checkpoint):
    """Everything a pack needs to continue after ``epoch`` epochs; a checkpoint holds one.

    Per-run bookkeeping covers all R runs of the pack; ``params`` and the optimiser's moments cover
    only the runs still training (``active``, ascending indices into the pack). Saved and loaded as
    every ``Checkpoint``.
    """

    fingerprint: str
    epoch: int
    active: torch.Tensor  # [A] long
    params: list[torch.Tensor]  # [A, ...] network then codec parameters
    optimiser: dict  # PackedAdam.state_dict() of the active runs
    best_params: list[torch.Tensor]  # [R, ...] every run's parameters at its best validation MAE
    best_mae: torch.Tensor  # [R] best validation MAE so far (inf before the first finite one)
    best_epoch: torch.Tensor  # [R] long, the epoch of best_mae (0: none yet, a diverged run)
    stopped_at: torch.Tensor  # [R] long, the epoch a run stopped at (0 while it trains)
    history: list[list[float]]  # per epoch, every run's validation MAE (nan for runs already stopped)
    order_rng: list[torch.Tensor]  # states of the runs' data-order generators
    dropout_rng: list[torch.Tensor]  # states of the runs' dropout generators


def predict_in_chunks(
    net: PackedNetwork, method: Method, codec_params: dict, fixed_decoder, X: torch.Tensor, chunk: int
) -> torch.Tensor:
    """Every run's predictions [R, n, m] in the [0, 1] target scale for features X [n, ...],
    ``chunk`` rows at a time (memory only)."""
    outs = [method.predict(net(X[i : i + chunk]), codec_params, fixed_decoder) for i in range(0, len(X), chunk)]
    return torch.cat(outs, dim=1)


class _Progress:
    def __init__(self, log, runs: int, max_epochs: int, every: int):
        self.log, self.runs, self.max_epochs, self.every = log, runs, max_epochs, every
        self.start = time.perf_counter()

    def epoch(self, epoch: int, active: int, best: torch.Tensor, force: bool = False):
        if self.log is None or not (force or epoch % self.every == 0):
            return
        finite = best[torch.isfinite(best)]
        best_txt = (
            f"best val MAE median {finite.median():.5g} (min {finite.min():.5g})"
            if len(finite)
            else "no finite val MAE yet"
        )
        self.log(
            f"epoch {epoch}/{self.max_epochs}: {active}/{self.runs} runs active, {best_txt}, "
            f"{time.perf_counter() - self.start:.1f} s"
        )

    def finish(self, epochs: int, best: torch.Tensor, diverged: int):
        if self.log is not None:
            finite = best[torch.isfinite(best)]
            summary = f"best val MAE median {finite.median():.5g}" if len(finite) else "no finite val MAE"
            self.log(
                f"training finished after {epochs} epochs ({self.runs} runs, {diverged} diverged): {summary}, "
                f"{time.perf_counter() - self.start:.1f} s"
            )


def train_pack(
    data: SplitData,
    method: Method,
    runs: list[RunSpec],
    k: int | None = None,
    codec: Codec | None = None,
    architecture: Architecture = Architecture(),
    training: TrainingConfig = TrainingConfig(),
    settings: MethodSettings = MethodSettings(),
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    log: Callable[[str], None] | None = None,
    checkpoint: str | Path | None = None,
    checkpoint_every: int = 10,
) -> list[RunResult]:
    """Train ``runs`` together and return one result per run, in order.

    ``codec`` is required for methods with k classes (see ``codec_for_method``). ``checkpoint``: a
    file where the pack's state is saved every ``checkpoint_every`` epochs and resumed from, so that
    a killed job continues where it stopped; it is deleted when training ends. Where the trained
    weights are wanted too: ``train_pack_with_predictor``.
    """
    return train_pack_with_predictor(
        data, method, runs, k, codec, architecture, training, settings, device, dtype, log, checkpoint, checkpoint_every
    )[0]


def train_pack_with_predictor(
    data: SplitData,
    method: Method,
    runs: list[RunSpec],
    k: int | None = None,
    codec: Codec | None = None,
    architecture: Architecture = Architecture(),
    training: TrainingConfig = TrainingConfig(),
    settings: MethodSettings = MethodSettings(),
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    log: Callable[[str], None] | None = None,
    checkpoint: str | Path | None = None,
    checkpoint_every: int = 10,
) -> tuple[list[RunResult], PackPredictor]:
    """``train_pack``, and a ``PackPredictor`` holding every run's best weights (to predict new data
    with, as ``TargetCodecRegressor`` does)."""
    t0 = time.perf_counter()
    pack = _Pack(data, method, runs, k, codec, architecture, training, settings, torch.device(device), dtype)
    if checkpoint is not None and Path(checkpoint).exists():
        pack.restore(PackState.load(checkpoint, pack.device, pack.fingerprint))
        if log:
            log(f"resumed from checkpoint {checkpoint} after epoch {pack.epoch}")
    t1 = time.perf_counter()

    progress = _Progress(log, pack.R, training.max_epochs, max(1, training.log_every))
    while pack.epoch < training.max_epochs and len(pack.active) > 0:
        pack.train_one_epoch()
        stopped = pack.validate_and_stop_early()
        progress.epoch(pack.epoch, len(pack.active), pack.best_mae, force=stopped > 0)
        if checkpoint is not None and pack.epoch % checkpoint_every == 0:
            pack.state().save(checkpoint)
        if _STOP_AFTER_EPOCH is not None and pack.epoch == _STOP_AFTER_EPOCH:
            raise TrainingStopped(f"stopped after epoch {pack.epoch} (stop_after_epoch)")
    t2 = time.perf_counter()

    results, predictor = pack.finish()
    progress.finish(len(pack.history), pack.best_mae, sum(r.diverged for r in results))
    if checkpoint is not None:
        Path(checkpoint).unlink(missing_ok=True)
    if log:
        trained = sum(r.epochs_trained for r in results)
        log(
            f"timing: set-up {t1 - t0:.3f} s, training {t2 - t1:.3f} s, evaluation {time.perf_counter() - t2:.3f} s; "
            f"{trained} run-epochs trained of {pack.R} x {len(pack.history)} (stopped runs leave the pack)"
        )
    return results, predictor


class _Pack:
    """A pack in training: the network, codec parameters, optimiser, generators and per-run
    hyper-parameters of the runs still training, and every run's early-stopping bookkeeping (on the
    host; ``state()`` and ``restore()`` convert to and from a ``PackState``)."""

    def __init__(self, data, method, runs, k, codec, architecture, training, settings, device, dtype):
        if len(runs) == 0:
            raise ValueError("a pack needs at least one run")
        if method.uses_k and codec is None:
            raise ValueError(f"method {method.name!r} needs k and a codec")
        self.data, self.method, self.runs, self.training, self.settings = data, method, runs, training, settings
        self.device, self.dtype, self.R = device, dtype, len(runs)
        tensor = lambda a: torch.as_tensor(np.asarray(a), dtype=dtype, device=device)  # noqa: E731
        self.X_train, self.y_train = tensor(data.X_train), tensor(data.y_train)
        self.X_val, self.y_val = tensor(data.X_val), tensor(data.y_val)
        n, m = self.y_train.shape
        self.fingerprint = repr((runs, method.name, k, architecture, training.computed(), settings, str(dtype), n))
        self.steps_per_epoch = math.ceil(n / training.batch_size)
        self.total_steps = training.max_epochs * self.steps_per_epoch

        self.order_generators = [torch.Generator().manual_seed(r.seed) for r in runs]
        self.dropout_generators = [
            torch.Generator(device=device).manual_seed(r.seed + DROPOUT_SEED_OFFSET) for r in runs
        ]
        self.net = PackedNetwork(
            architecture,
            self.X_train.shape[1:],
            method.output_size(k, m),
            self.order_generators,
            dtype=dtype,
            device=device,
        )
        self.psi_train = method.frozen_targets(codec, self.y_train, settings) if codec is not None else None
        decoder = method.fixed_decoder(codec) if codec is not None else None
        self.fixed_decoder = decoder.to(device, dtype) if decoder is not None else None
        self.codec_params = {
            name: value.to(device, dtype).unsqueeze(0).repeat(self.R, *([1] * value.dim())).requires_grad_(True)
            for name, value in (method.trainable_codec(codec, settings).items() if codec is not None else [])
        }
        n_net = len(list(self.net.parameters()))
        n_codec = len(self.codec_params)
        self.optimiser = PackedAdam(
            self.params,
            [training.weight_decay] * n_net + [training.codec_weight_decay] * n_codec,
            weight_decay_modes=[training.weight_decay_mode] * n_net + [training.codec_weight_decay_mode] * n_codec,
        )
        column = lambda attr: torch.tensor([getattr(r, attr) for r in runs], dtype=dtype, device=device)  # noqa: E731
        self.max_lr = column("lr")
        self.hp = {name: column(name).unsqueeze(1) for name in ("lambda_kl", "lambda_auto", "lambda_pred")}

        # training.compile: the forward pass and loss as one compiled graph (the dropout uniforms come
        # from the runs' generators outside it); numbers equal the eager ones within float rounding.
        # Shapes become symbolic only where they change (batch, runs; see train_one_epoch)
        self.compiled_loss = torch.compile(self._loss, dynamic=None) if training.compile else None

        self.active = torch.arange(self.R)  # the runs still training
        self.best_params = [p.detach().clone() for p in self.params]
        self.best_mae = torch.full((self.R,), math.inf, dtype=dtype)
        self.best_epoch = torch.zeros(self.R, dtype=torch.long)
        self.stopped_at = torch.zeros(self.R, dtype=torch.long)
        self.history: list[list[float]] = []
        self.epoch = 0

    @property
    def params(self) -> list[torch.Tensor]:
        return list(self.net.parameters()) + list(self.codec_params.values())

    def train_one_epoch(self) -> None:
        """One pass over the training data in each active run's own order; no host synchronisation."""
        active = self.active.tolist()
        order = torch.stack([torch.randperm(len(self.X_train), generator=self.order_generators[r]) for r in active])
        if self.device.type == "cuda":
            order = order.pin_memory().to(self.device, non_blocking=True)
        dropout_generators = [self.dropout_generators[r] for r in active]
        t = self.training
        self.net.train()
        for s in range(self.steps_per_epoch):
            idx = order[:, s * t.batch_size : (s + 1) * t.batch_size]
            psi = self.psi_train[idx] if self.psi_train is not None else None
            if self.compiled_loss is not None:
                uniforms = self.net.dropout_uniforms(idx.shape[1], dropout_generators)
                X = self.X_train[idx]
                # a row's shape never changes; symbolic image sizes (which another pack compiled in
                # this process can leave behind) stop inductor laying out the CNN's activations
                for dim in range(2, X.dim()):
                    torch._dynamo.mark_static(X, dim)
                loss = self.compiled_loss(X, self.y_train[idx], psi, uniforms, self.codec_params, self.hp)
            else:
                out = self.net(self.X_train[idx], dropout_generators)
                loss = (
                    self.method.loss(out, self.y_train[idx], psi, self.codec_params, self.hp, self.settings)
                    .mean(-1)
                    .sum()
                )
            params = self.params
            grads = list(torch.autograd.grad(loss, params))
            clip_grad_norm_per_run(grads, t.grad_clip)
            step = self.epoch * self.steps_per_epoch + s
            self.optimiser.step(
                grads, self.max_lr * learning_rate_factor(step, self.total_steps, t.schedule, t.warmup_fraction)
            )
        self.epoch += 1

    def _loss(self, X, y, psi, uniforms, codec_params, hp) -> torch.Tensor:
        """The summed per-run losses of one batch (what ``compiled_loss`` compiles)."""
        out = self.net(X, uniforms=uniforms)
        return self.method.loss(out, y, psi, codec_params, hp, self.settings).mean(-1).sum()

    def predict(self, X: torch.Tensor) -> torch.Tensor:
        return predict_in_chunks(
            self.net, self.method, self.codec_params, self.fixed_decoder, X, self.training.eval_batch_size
        )

    def validate_and_stop_early(self) -> int:
        """Validation MAE of the active runs, their best parameters, and early stopping (patience);
        the runs that stop leave the pack. The epoch's one host synchronisation reads the MAEs.
        Returns how many runs stopped."""
        self.net.eval()
        with torch.no_grad():
            val_mae = (self.predict(self.X_val) - self.y_val).abs().mean(dim=(-2, -1)).cpu()
        active = self.active
        improved = val_mae < self.best_mae[active]
        self.best_mae[active] = torch.where(improved, val_mae, self.best_mae[active])
        improved_on_device = improved.to(self.device)
        with torch.no_grad():
            for b, p in zip(self.best_params, self.params):
                better = torch.where(
                    improved_on_device.reshape(-1, *([1] * (p.dim() - 1))), p, b[active] if len(active) < self.R else b
                )
                if len(active) < self.R:
                    b[active.to(self.device)] = better
                else:
                    b.copy_(better)
        row = torch.full((self.R,), math.nan, dtype=val_mae.dtype)
        row[active] = val_mae
        self.history.append(row.tolist())
        self.best_epoch[active[improved]] = self.epoch
        over = self.epoch - self.best_epoch[active] >= self.training.patience
        self.stopped_at[active[over]] = self.epoch
        if over.any() and not over.all():
            self._keep(torch.nonzero(~over).squeeze(1))
        elif over.all():
            self.active = active[:0]
        return int(over.sum())

    def _keep(self, positions: torch.Tensor) -> None:
        """Compact the pack to the active runs at ``positions`` (indices into ``self.active``)."""
        index = positions.to(self.device)
        self.net.keep_runs(index)
        self.codec_params = {name: v.detach()[index].requires_grad_(True) for name, v in self.codec_params.items()}
        self.optimiser.keep_runs(index, self.params)
        self.max_lr = self.max_lr[index]
        self.hp = {name: v[index] for name, v in self.hp.items()}
        self.active = self.active[positions]

    def state(self) -> PackState:
        return PackState(
            fingerprint=self.fingerprint,
            epoch=self.epoch,
            active=self.active.clone(),
            params=[p.detach().clone() for p in self.params],
            optimiser=self.optimiser.state_dict(),
            best_params=self.best_params,
            best_mae=self.best_mae,
            best_epoch=self.best_epoch,
            stopped_at=self.stopped_at,
            history=self.history,
            order_rng=[g.get_state() for g in self.order_generators],
            dropout_rng=[g.get_state() for g in self.dropout_generators],
        )

    def restore(self, state: PackState) -> None:
        """Continue from ``state`` (of this pack: PackState.load checked its fingerprint)."""
        active = state.active.cpu()
        if len(active) < self.R:
            self._keep(active)
        with torch.no_grad():
            for dst, src in zip(self.params + self.best_params, state.params + state.best_params):
                dst.copy_(src)
        self.optimiser.load_state_dict(state.optimiser)
        self.best_mae.copy_(state.best_mae)
        self.best_epoch.copy_(state.best_epoch)
        self.stopped_at.copy_(state.stopped_at)
        self.history = [list(row) for row in state.history]
        self.epoch = int(state.epoch)
        for g, s in zip(self.order_generators + self.dropout_generators, state.order_rng + state.dropout_rng):
            g.set_state(s.cpu())

    def finish(self) -> tuple[list[RunResult], PackPredictor]:
        """Every run's best parameters back in the (full) pack, its metrics on validation and test."""
        final_epoch = len(self.history)
        self.stopped_at[self.stopped_at == 0] = final_epoch
        n_net = len(list(self.net.parameters()))
        self.net.set_runs(self.best_params[:n_net])
        self.codec_params = dict(zip(self.codec_params, self.best_params[n_net:]))
        self.active = torch.arange(self.R)
        predictor = PackPredictor(
            self.net, self.method, self.codec_params, self.fixed_decoder, self.training.eval_batch_size
        )
        data, dtype, device = self.data, self.dtype, self.device
        scale = torch.as_tensor(data.y_max - data.y_min, dtype=dtype, device=device)
        offset = torch.as_tensor(data.y_min, dtype=dtype, device=device)
        metrics = {}
        for split, X, y in (("val", self.X_val, self.y_val), ("test", data.X_test, data.y_test)):
            y = torch.as_tensor(y, dtype=dtype, device=device)  # validation targets already sit on the device
            z = predictor.predict(X)
            metrics.update(regression_metrics(y, z, f"{split}_"))
            metrics.update(regression_metrics(y * scale + offset, z * scale + offset, f"{split}_original_"))
        results = []
        for r, spec in enumerate(self.runs):
            diverged = int(self.best_epoch[r]) == 0
            results.append(
                RunResult(
                    spec=spec,
                    metrics={name: (math.nan if diverged else float(v[r])) for name, v in metrics.items()},
                    epochs_trained=int(self.stopped_at[r]),
                    best_epoch=int(self.best_epoch[r]),
                    val_mae_history=[h[r] for h in self.history[: int(self.stopped_at[r])]],
                )
            )
        return results, predictor


class PackPredictor:
    """The trained pack: ``predict(X)`` gives every run's predictions in the [0, 1] target scale."""

    def __init__(self, net, method, codec_params, fixed_decoder, eval_batch_size):
        self.net, self.method, self.codec_params = net, method, {k: v.detach() for k, v in codec_params.items()}
        self.fixed_decoder, self.eval_batch_size = fixed_decoder, eval_batch_size
        self.param = next(net.parameters())

    @torch.no_grad()
    def predict(self, X) -> torch.Tensor:
        """[R, n, m] predictions for features X [n, ...]."""
        self.net.eval()
        X = torch.as_tensor(
            np.asarray(X) if not isinstance(X, torch.Tensor) else X, dtype=self.param.dtype, device=self.param.device
        )
        return predict_in_chunks(self.net, self.method, self.codec_params, self.fixed_decoder, X, self.eval_batch_size)

    def to(self, dtype: torch.dtype) -> PackPredictor:
        """A copy that predicts in ``dtype``: in float64 a row's prediction no longer depends on the rows
        it is computed with (float32 matrix products sum in another order for another batch)."""
        decoder = self.fixed_decoder.to(dtype) if self.fixed_decoder is not None else None
        codec_params = {k: v.to(dtype) for k, v in self.codec_params.items()}
        return PackPredictor(
            copy.deepcopy(self.net).to(dtype), self.method, codec_params, decoder, self.eval_batch_size
        )
