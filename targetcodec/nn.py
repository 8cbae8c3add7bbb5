"""Networks of section 4 for a *pack* of R independent runs trained as one batched model.

Every parameter carries a leading run dimension R. Linear layers use batched matrix products
(torch.baddbmm); convolutions run one run after the other, each with its own weights. Each run draws its
initial weights and its dropout masks from its own generators, so a run's numbers do not depend on
which other runs share its pack (tests compare a pack with standard single-run PyTorch training).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .specs import Architecture


def uniform_init(shape, fan_in: int, generator: torch.Generator) -> torch.Tensor:
    """PyTorch's default initialisation of Linear and Conv2d, U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
    drawn in float64 from the run's own generator (same numbers in float32 and float64 runs)."""
    bound = 1.0 / math.sqrt(fan_in)
    return (torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1) * bound


def dropout_with_uniforms(h: torch.Tensor, u: torch.Tensor, p: float) -> torch.Tensor:
    """Inverted dropout given uniforms u ~ U[0, 1): keep where u >= p, scale by 1 / (1 - p).

    Comparing uniforms costs about a third of nn.Dropout's mask on CPU (our measurement);
    the mask is built in place in ``u``, which the caller must not reuse.
    """
    return h * u.ge_(p).mul_(1.0 / (1.0 - p))


@dataclass
class LayerShapes:
    conv: list[tuple[int, int]] = field(default_factory=list)  # (in_channels, out_channels)
    linear: list[tuple[int, int]] = field(default_factory=list)  # (in_features, out_features)


def layer_shapes(arch: Architecture, input_shape: tuple[int, ...], output_size: int) -> LayerShapes:
    shapes = LayerShapes()
    if arch.kind == "cnn":
        channels, height, width = input_shape
        for out_channels in arch.conv_channels:
            shapes.conv.append((channels, out_channels))
            channels, height, width = out_channels, height // 2, width // 2
        features = channels * height * width
    elif arch.kind == "mlp":
        (features,) = input_shape
    else:
        raise ValueError(f"unknown architecture kind {arch.kind!r} (expected 'mlp' or 'cnn')")
    for hidden in arch.hidden_widths():
        shapes.linear.append((features, hidden))
        features = hidden
    shapes.linear.append((features, output_size))
    return shapes


def initial_weights(shapes: LayerShapes, generator: torch.Generator) -> list[torch.Tensor]:
    """One run's initial parameters in a fixed order: per layer weight then bias, in PyTorch layouts
    (Conv2d [out, in, 3, 3], Linear [out, in])."""
    params = []
    for c_in, c_out in shapes.conv:
        params.append(uniform_init((c_out, c_in, 3, 3), c_in * 9, generator))
        params.append(uniform_init((c_out,), c_in * 9, generator))
    for f_in, f_out in shapes.linear:
        params.append(uniform_init((f_out, f_in), f_in, generator))
        params.append(uniform_init((f_out,), f_in, generator))
    return params


class PackedNetwork(torch.nn.Module):
    """R copies of the MLP or CNN of section 4, one per run, evaluated together.

    ``forward(x)`` takes per-run batches ``[R, B, *input_shape]`` or one batch shared by all runs
    ``[B, *input_shape]`` and returns ``[R, B, output_size]``.
    """

    def __init__(
        self, arch: Architecture, input_shape, output_size: int, init_generators, dtype=torch.float32, device="cpu"
    ):
        super().__init__()
        self.arch = arch
        self.runs = len(init_generators)
        self.input_shape = tuple(input_shape)
        self.shapes = layer_shapes(arch, self.input_shape, output_size)
        per_run = [initial_weights(self.shapes, g) for g in init_generators]
        stacked = [torch.stack([run[i] for run in per_run]) for i in range(len(per_run[0]))]
        n_conv = 2 * len(self.shapes.conv)
        self.conv_weights = torch.nn.ParameterList()
        self.conv_biases = torch.nn.ParameterList()
        for i in range(0, n_conv, 2):
            self.conv_weights.append(torch.nn.Parameter(stacked[i].to(device, dtype)))
            self.conv_biases.append(torch.nn.Parameter(stacked[i + 1].to(device, dtype)))
        self.weights = torch.nn.ParameterList()  # [R, in, out] for baddbmm
        self.biases = torch.nn.ParameterList()  # [R, 1, out]
        for i in range(n_conv, len(stacked), 2):
            self.weights.append(torch.nn.Parameter(stacked[i].transpose(1, 2).contiguous().to(device, dtype)))
            self.biases.append(torch.nn.Parameter(stacked[i + 1].unsqueeze(1).to(device, dtype)))

    def keep_runs(self, index: torch.Tensor) -> None:
        """Keep only the runs at ``index`` (a pack that shrinks as its runs stop early)."""
        for p in self.parameters():
            p.data = p.data[index]
        self.runs = len(index)

    def set_runs(self, tensors: list[torch.Tensor]) -> None:
        """Replace every parameter (in ``parameters()`` order) by ``tensors``, with any number of runs."""
        for p, t in zip(self.parameters(), tensors, strict=True):
            p.data = t.detach()
        self.runs = tensors[0].shape[0]

    def _conv_trunk(self, x: torch.Tensor) -> torch.Tensor:
        """The runs' flattened conv features [R, B, C*H*W] of per-run batches [R, B, C, H, W] or one
        shared batch [B, C, H, W].

        One plain convolution per run, in channels_last layout: on CPUs oneDNN runs these two to four
        times faster than one grouped convolution over the runs in NCHW (docs/performance.md,
        "RetinaMNIST on CPUs"), and each run's arithmetic stays its own."""
        shared = x.dim() == 1 + len(self.input_shape)
        weights = [w.unbind() for w in self.conv_weights]
        biases = [b.unbind() for b in self.conv_biases]
        features = []
        for r in range(self.runs):
            h = (x if shared else x[r]).contiguous(memory_format=torch.channels_last)
            for w, b in zip(weights, biases):
                # in place: the convolution's backward needs its input, not its output
                h = F.avg_pool2d(F.relu(F.conv2d(h, w[r], b[r], padding=1), inplace=True), 2)
            features.append(h.flatten(1))  # C, H, W order, whatever the layout
        return torch.stack(features)

    def dropout_uniforms(self, batch: int, dropout_generators) -> list[torch.Tensor] | None:
        """The uniforms of one training step's dropout masks, [R, batch, width] per hidden layer, drawn
        from each run's generator in the order ``forward`` would draw them (for a compiled step,
        which takes them as inputs)."""
        if self.arch.hidden_dropout() <= 0:
            return None
        w = self.weights[0]
        uniforms = []
        for hidden in self.weights[:-1]:
            u = torch.empty((self.runs, batch, hidden.shape[-1]), dtype=w.dtype, device=w.device)
            for r, g in enumerate(dropout_generators):
                torch.rand(u.shape[1:], generator=g, out=u[r])
            uniforms.append(u)
        return uniforms

    def forward(self, x: torch.Tensor, dropout_generators=None, uniforms=None) -> torch.Tensor:
        """Dropout is applied when ``dropout_generators`` (one per run) or the step's ``uniforms``
        (``dropout_uniforms``) are given: training mode."""
        h = self._conv_trunk(x) if self.shapes.conv else x
        p = self.arch.hidden_dropout()
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(b, h, w) if h.dim() == 3 else torch.matmul(h, w) + b
            if i == last:
                break
            h = torch.relu(h)
            if uniforms is not None:
                h = dropout_with_uniforms(h, uniforms[i], p)
            elif dropout_generators is not None and p > 0:
                u = torch.empty_like(h)
                for r, g in enumerate(dropout_generators):
                    torch.rand(h.shape[1:], generator=g, out=u[r])
                h = dropout_with_uniforms(h, u, p)
        return h
