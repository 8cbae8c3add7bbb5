"""One run trained the textbook way: nn.Linear / nn.Conv2d modules, a DataLoader, torch.optim.Adam
and torch.nn.utils.clip_grad_norm_.

It is the yardstick of the packed trainer: with the same seed it draws the same initial weights,
data order and dropout masks, so a run trained alone here must match the same run inside a pack
(tests/test_pack_equivalence.py), and it is the "naive loop" of benchmarks/pack_speed.py.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler, TensorDataset

from .codec import Codec
from .methods import Method, MethodSettings
from .metrics import regression_metrics
from .nn import Architecture, dropout_with_uniforms, initial_weights, layer_shapes
from .optim import learning_rate_factor
from .pack import DROPOUT_SEED_OFFSET, RunResult, RunSpec, SplitData, TrainingConfig


class PermutationSampler(Sampler):
    """A fresh permutation each epoch from the run's generator (RandomSampler draws one extra)."""

    def __init__(self, n: int, generator: torch.Generator):
        self.n, self.generator = n, generator

    def __iter__(self):
        return iter(torch.randperm(self.n, generator=self.generator).tolist())

    def __len__(self):
        return self.n


class ReferenceNetwork(torch.nn.Module):
    def __init__(self, arch: Architecture, input_shape, output_size: int, generator: torch.Generator, dtype, device):
        super().__init__()
        self.arch = arch
        shapes = layer_shapes(arch, tuple(input_shape), output_size)
        self.convs = torch.nn.ModuleList(torch.nn.Conv2d(i, o, 3, padding=1) for i, o in shapes.conv)
        self.linears = torch.nn.ModuleList(torch.nn.Linear(i, o) for i, o in shapes.linear)
        values = iter(initial_weights(shapes, generator))
        with torch.no_grad():
            for layer in list(self.convs) + list(self.linears):
                layer.weight.copy_(next(values))
                layer.bias.copy_(next(values))
        self.to(device, dtype)

    def forward(self, x, dropout_generator=None):
        for conv in self.convs:
            x = torch.nn.functional.avg_pool2d(torch.relu(conv(x)), 2)
        h = x.flatten(1)
        p = self.arch.hidden_dropout()
        for i, linear in enumerate(self.linears):
            h = linear(h)
            if i == len(self.linears) - 1:
                break
            h = torch.relu(h)
            if dropout_generator is not None and p > 0:
                u = torch.rand(h.shape, generator=dropout_generator, dtype=h.dtype, device=h.device)
                h = dropout_with_uniforms(h, u, p)
        return h


def train_single_run(
    data: SplitData,
    method: Method,
    run: RunSpec,
    k: int | None = None,
    codec: Codec | None = None,
    architecture: Architecture = Architecture(),
    training: TrainingConfig = TrainingConfig(),
    settings: MethodSettings = MethodSettings(),
    device="cpu",
    dtype=torch.float64,
) -> tuple[RunResult, ReferenceNetwork, dict[str, torch.Tensor]]:
    """Train one run; returns its result, its network and its trained codec parameters."""
    device = torch.device(device)
    tensor = lambda a: torch.as_tensor(np.asarray(a), dtype=dtype, device=device)  # noqa: E731
    X_train, y_train = tensor(data.X_train), tensor(data.y_train)
    X_val, y_val, X_test, y_test = tensor(data.X_val), tensor(data.y_val), tensor(data.X_test), tensor(data.y_test)
    n, m = y_train.shape
    order_generator = torch.Generator().manual_seed(run.seed)
    dropout_generator = torch.Generator(device=device).manual_seed(run.seed + DROPOUT_SEED_OFFSET)
    net = ReferenceNetwork(architecture, X_train.shape[1:], method.output_size(k, m), order_generator, dtype, device)

    psi_train = method.frozen_targets(codec, y_train, settings) if codec is not None else None
    fixed = method.fixed_decoder(codec) if codec is not None else None
    fixed_decoder = fixed.to(device, dtype) if fixed is not None else None
    codec_params = {
        name: torch.nn.Parameter(v.to(device, dtype).clone())
        for name, v in (method.trainable_codec(codec, settings).items() if codec is not None else [])
    }
    all_params = list(net.parameters()) + list(codec_params.values())
    # one torch optimiser per group: Adam for coupled ("l2") weight decay, AdamW for "decoupled"
    groups = [(list(net.parameters()), training.weight_decay, training.weight_decay_mode)]
    if codec_params:
        groups.append((list(codec_params.values()), training.codec_weight_decay, training.codec_weight_decay_mode))
    optimisers = [
        (torch.optim.AdamW if mode == "decoupled" else torch.optim.Adam)(ps, lr=run.lr, weight_decay=wd)
        for ps, wd, mode in groups
    ]
    hp = {"lambda_kl": run.lambda_kl, "lambda_auto": run.lambda_auto, "lambda_pred": run.lambda_pred}

    tensors = (X_train, y_train) + ((psi_train,) if psi_train is not None else ())
    loader = DataLoader(
        TensorDataset(*tensors), batch_size=training.batch_size, sampler=PermutationSampler(n, order_generator)
    )
    total_steps = training.max_epochs * math.ceil(n / training.batch_size)

    def predict(X):
        return method.predict(net(X), codec_params, fixed_decoder)

    best_mae, best_epoch, best_state, history, step = math.inf, 0, None, [], 0
    for epoch in range(1, training.max_epochs + 1):
        net.train()
        for batch in loader:
            xb, yb = batch[0], batch[1]
            psi = batch[2] if psi_train is not None else None
            loss = method.loss(net(xb, dropout_generator), yb, psi, codec_params, hp, settings).mean()
            for optimiser in optimisers:
                optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(all_params, training.grad_clip)
            for optimiser in optimisers:
                for group in optimiser.param_groups:
                    group["lr"] = run.lr * learning_rate_factor(
                        step, total_steps, training.schedule, training.warmup_fraction
                    )
                optimiser.step()
            step += 1
        net.eval()
        with torch.no_grad():
            val_mae = float((predict(X_val) - y_val).abs().mean())
        history.append(val_mae)
        if val_mae < best_mae:
            best_mae, best_epoch = val_mae, epoch
            best_state = [p.detach().clone() for p in all_params]
        if epoch - best_epoch >= training.patience:
            break

    with torch.no_grad():
        if best_state is not None:
            for p, b in zip(all_params, best_state):
                p.copy_(b)
        scale = torch.as_tensor(data.y_max - data.y_min, dtype=dtype, device=device)
        offset = torch.as_tensor(data.y_min, dtype=dtype, device=device)
        metrics = {}
        for split, X, y in (("val", X_val, y_val), ("test", X_test, y_test)):
            z = predict(X)
            metrics.update({k_: float(v) for k_, v in regression_metrics(y, z, f"{split}_").items()})
            metrics.update(
                {
                    k_: float(v)
                    for k_, v in regression_metrics(
                        y * scale + offset, z * scale + offset, f"{split}_original_"
                    ).items()
                }
            )
    if best_state is None:
        metrics = {k_: math.nan for k_ in metrics}
    result = RunResult(
        spec=run, metrics=metrics, epochs_trained=len(history), best_epoch=best_epoch, val_mae_history=history
    )
    return result, net, codec_params
