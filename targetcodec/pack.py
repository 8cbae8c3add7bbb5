"""Train a pack of runs (seeds and sweep values of one method, k and dataset) as one batched model.

Each run keeps its own initialisation, data order, dropout masks, learning rate and lambdas,
gradient clipping, early stopping and best checkpoint; the pack only shares the arithmetic.
See ``shared/notes/performance.md`` of the project for why (10x to 300x on a GPU).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .codec import Codec, initial_codec
from .data.split import SplitData  # noqa: F401 (re-exported)
from .specs import Architecture, MethodSettings, RunResult, RunSpec, TrainingConfig  # noqa: F401 (re-exported)
from .methods import Method
from .metrics import regression_metrics
from .nn import PackedNetwork
from .optim import PackedAdam, clip_grad_norm_per_run, learning_rate_factor

DROPOUT_SEED_OFFSET = 1_000_003  # dropout masks use a second stream of the run's seed


def codec_for_method(method: Method, y_train: np.ndarray, k: int | None, settings: MethodSettings, pretrained: Codec | None = None,
                     init_lambda_sigma: float = 1.0, seed: int = 0) -> Codec | None:
    """The codec a method starts from: none (regression), the pre-trained one (eq. 7), or the
    initialisation of section 3.3 (grid for m = 1, k-means++ for m > 1)."""
    if not method.uses_k:
        return None
    if method.needs_pretrained_codec(settings):
        if pretrained is None:
            raise ValueError(f"method {method.name!r} needs a pre-trained codec")
        return pretrained
    return initial_codec(y_train, k, lambda_sigma=init_lambda_sigma, seed=seed, grid=settings.grid)


class _Progress:
    def __init__(self, log, runs: int, max_epochs: int, every: int):
        self.log, self.runs, self.max_epochs, self.every = log, runs, max_epochs, every
        self.start = time.perf_counter()

    def epoch(self, epoch: int, active: torch.Tensor, best: torch.Tensor, force: bool = False):
        if self.log is None or not (force or epoch % self.every == 0):
            return
        finite = best[torch.isfinite(best)]
        best_txt = f"best val MAE median {finite.median():.5g} (min {finite.min():.5g})" if len(finite) else "no finite val MAE yet"
        self.log(f"epoch {epoch}/{self.max_epochs}: {int(active.sum())}/{self.runs} runs active, {best_txt}, "
                 f"{time.perf_counter() - self.start:.1f} s")

    def finish(self, epochs: int, best: torch.Tensor, diverged: int):
        if self.log is not None:
            finite = best[torch.isfinite(best)]
            summary = f"best val MAE median {finite.median():.5g}" if len(finite) else "no finite val MAE"
            self.log(f"training finished after {epochs} epochs ({self.runs} runs, {diverged} diverged): {summary}, "
                     f"{time.perf_counter() - self.start:.1f} s")


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
    stop_after_epoch: int | None = None,
    return_predictor: bool = False,
):
    """Train ``runs`` together and return one result per run, in order.

    ``codec`` is required for methods with k classes (see ``codec_for_method``). ``checkpoint``: a
    file where the pack's full state is saved every ``checkpoint_every`` epochs and resumed from,
    so that a killed job continues where it stopped; it is deleted when training ends.
    ``stop_after_epoch`` interrupts training (to test resuming) and returns an empty list.
    With ``return_predictor``, also returns a ``PackPredictor`` holding the restored best weights.
    """
    device = torch.device(device)
    R = len(runs)
    if R == 0:
        raise ValueError("a pack needs at least one run")
    if method.uses_k and codec is None:
        raise ValueError(f"method {method.name!r} needs k and a codec")
    tensor = lambda a: torch.as_tensor(np.asarray(a), dtype=dtype, device=device)  # noqa: E731
    X_train, y_train = tensor(data.X_train), tensor(data.y_train)
    X_val, y_val, X_test, y_test = tensor(data.X_val), tensor(data.y_val), tensor(data.X_test), tensor(data.y_test)
    n, m = y_train.shape
    out_size = method.output_size(k, m)

    order_generators = [torch.Generator().manual_seed(r.seed) for r in runs]
    dropout_generators = [torch.Generator(device=device).manual_seed(r.seed + DROPOUT_SEED_OFFSET) for r in runs]
    net = PackedNetwork(architecture, X_train.shape[1:], out_size, order_generators, dtype=dtype, device=device)

    psi_train = method.frozen_targets(codec, y_train, settings) if codec is not None else None
    fixed_decoder = method.fixed_decoder(codec).to(device, dtype) if codec is not None and method.fixed_decoder(codec) is not None else None
    codec_params = {
        name: value.to(device, dtype).unsqueeze(0).repeat(R, *([1] * value.dim())).requires_grad_(True)
        for name, value in (method.trainable_codec(codec, settings).items() if codec is not None else [])
    }
    params = list(net.parameters()) + list(codec_params.values())
    weight_decays = [training.weight_decay] * len(list(net.parameters())) + [training.codec_weight_decay] * len(codec_params)
    wd_modes = [training.weight_decay_mode] * len(list(net.parameters())) + [training.codec_weight_decay_mode] * len(codec_params)
    optimiser = PackedAdam(params, weight_decays, weight_decay_modes=wd_modes)
    column = lambda attr: torch.tensor([getattr(r, attr) for r in runs], dtype=dtype, device=device)  # noqa: E731
    max_lr = column("lr")
    hp = {name: column(name).unsqueeze(1) for name in ("lambda_kl", "lambda_auto", "lambda_pred")}

    batch = training.batch_size
    steps_per_epoch = math.ceil(n / batch)
    total_steps = training.max_epochs * steps_per_epoch
    best_params = [p.detach().clone() for p in params]
    best_mae = torch.full((R,), math.inf, dtype=dtype, device=device)
    best_epoch = torch.zeros(R, dtype=torch.long)
    stopped_at = torch.zeros(R, dtype=torch.long)  # 0 while a run is active
    history: list[list[float]] = []
    first_epoch = 0

    def predict(X: torch.Tensor) -> torch.Tensor:
        outs = [method.predict(net(X[i : i + training.eval_batch_size]), codec_params, fixed_decoder)
                for i in range(0, len(X), training.eval_batch_size)]
        return torch.cat(outs, dim=1)

    if checkpoint is not None and Path(checkpoint).exists():
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        if state["fingerprint"] != _fingerprint(runs, method, k, architecture, training, settings, dtype, n):
            raise RuntimeError(f"checkpoint {checkpoint} belongs to another configuration; delete it to start again")
        with torch.no_grad():
            for dst, src in zip(params + best_params, state["params"] + state["best_params"]):
                dst.copy_(src)
        optimiser.load_state_dict(state["optimiser"])
        best_mae.copy_(state["best_mae"])
        best_epoch.copy_(state["best_epoch"])
        stopped_at.copy_(state["stopped_at"])
        history = state["history"]
        first_epoch = state["epoch"]
        for g, s in zip(order_generators, state["order_rng"]):
            g.set_state(s)
        for g, s in zip(dropout_generators, state["dropout_rng"]):
            g.set_state(s.cpu() if device.type == "cuda" else s)
        if log:
            log(f"resumed from checkpoint {checkpoint} after epoch {first_epoch}")

    progress = _Progress(log, R, training.max_epochs, max(1, training.log_every))
    step = first_epoch * steps_per_epoch
    for epoch in range(first_epoch + 1, training.max_epochs + 1):
        if not bool((stopped_at == 0).any()):
            break
        order = torch.stack([torch.randperm(n, generator=g) for g in order_generators]).to(device)
        net.train()
        for s in range(steps_per_epoch):
            idx = order[:, s * batch : (s + 1) * batch]
            out = net(X_train[idx], dropout_generators)
            psi = psi_train[idx] if psi_train is not None else None
            per_sample = method.loss(out, y_train[idx], psi, codec_params, hp, settings)
            grads = list(torch.autograd.grad(per_sample.mean(-1).sum(), params))
            clip_grad_norm_per_run(grads, training.grad_clip)
            optimiser.step(grads, max_lr * learning_rate_factor(step, total_steps, training.schedule, training.warmup_fraction))
            step += 1

        net.eval()
        with torch.no_grad():
            val_mae = (predict(X_val) - y_val).abs().mean(dim=(-2, -1))
            improved = (val_mae < best_mae) & (stopped_at == 0).to(device)
            best_mae = torch.where(improved, val_mae, best_mae)
            for b, p in zip(best_params, params):
                b.copy_(torch.where(improved.reshape(R, *([1] * (p.dim() - 1))), p, b))
        history.append(val_mae.tolist())
        best_epoch[improved.cpu()] = epoch
        patience_over = (stopped_at == 0) & (epoch - best_epoch >= training.patience)
        stopped_at[patience_over] = epoch
        progress.epoch(epoch, stopped_at == 0, best_mae, force=bool(patience_over.any()))

        if checkpoint is not None and (epoch % checkpoint_every == 0 or epoch == stop_after_epoch):
            _save_checkpoint(checkpoint, params, best_params, optimiser, best_mae, best_epoch, stopped_at, history, epoch,
                             order_generators, dropout_generators,
                             _fingerprint(runs, method, k, architecture, training, settings, dtype, n))
        if stop_after_epoch is not None and epoch == stop_after_epoch:
            return []

    final_epoch = len(history)
    stopped_at[stopped_at == 0] = final_epoch
    progress.finish(final_epoch, best_mae, int((best_epoch == 0).sum()))
    with torch.no_grad():
        for p, b in zip(params, best_params):
            p.copy_(b)
        net.eval()
        scale = torch.as_tensor(data.y_max - data.y_min, dtype=dtype, device=device)
        offset = torch.as_tensor(data.y_min, dtype=dtype, device=device)
        metrics = {}
        for split, X, y in (("val", X_val, y_val), ("test", X_test, y_test)):
            z = predict(X)
            metrics.update(regression_metrics(y, z, f"{split}_"))
            metrics.update(regression_metrics(y * scale + offset, z * scale + offset, f"{split}_original_"))
    if checkpoint is not None:
        Path(checkpoint).unlink(missing_ok=True)

    results = []
    for r, spec in enumerate(runs):
        diverged = int(best_epoch[r]) == 0
        results.append(RunResult(
            spec=spec,
            metrics={name: (math.nan if diverged else float(v[r])) for name, v in metrics.items()},
            epochs_trained=int(stopped_at[r]),
            best_epoch=int(best_epoch[r]),
            val_mae_history=[h[r] for h in history[: int(stopped_at[r])]],
        ))
    if return_predictor:
        return results, PackPredictor(net, method, codec_params, fixed_decoder, training.eval_batch_size)
    return results


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
        X = torch.as_tensor(np.asarray(X), dtype=self.param.dtype, device=self.param.device)
        outs = [self.method.predict(self.net(X[i : i + self.eval_batch_size]), self.codec_params, self.fixed_decoder)
                for i in range(0, len(X), self.eval_batch_size)]
        return torch.cat(outs, dim=1)


def _fingerprint(runs, method, k, architecture, training, settings, dtype, n) -> str:
    return repr((runs, method.name, k, architecture, training, settings, str(dtype), n))


def _save_checkpoint(path, params, best_params, optimiser, best_mae, best_epoch, stopped_at, history, epoch,
                     order_generators, dropout_generators, fingerprint):
    from .io import atomic_path

    state = {
        "fingerprint": fingerprint,
        "params": [p.detach() for p in params],
        "best_params": best_params,
        "optimiser": optimiser.state_dict(),
        "best_mae": best_mae,
        "best_epoch": best_epoch,
        "stopped_at": stopped_at,
        "history": history,
        "epoch": epoch,
        "order_rng": [g.get_state() for g in order_generators],
        "dropout_rng": [g.get_state() for g in dropout_generators],
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
