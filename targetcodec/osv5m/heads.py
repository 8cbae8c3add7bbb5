"""The OpenStreetView-5M head (section 4, "Larger-scale Experiment"; Appendix C), for a pack of R runs.

Appendix C follows Dufour et al. (2024) "without the auxiliary noise layers": their 12-block MLP head
on cached StreetCLIP embeddings (their ``GeoAdaLNMLP``), where the image embedding enters every block
through adaptive layer norm (adaLN) instead of being the input:

- a learned start vector h_0 (width W, normal with std 0.02) is the state every image starts from;
- the embedding e (1024 floats) is mapped to c = Linear(1024, W)(e);
- each of the ``depth`` residual blocks: (shift, scale, gate) = Linear(W, 3W)(SiLU(c)),
  h <- h + gate * MLP((1 + scale) * LN(h) + shift), LN without affine parameters,
  MLP = Linear(W, 4W) -> GELU -> Linear(4W, W) with the last Linear zero-initialised
  (each block starts as the identity);
- a final adaLN (shift, scale) and a Linear(W, out): 2 values for least squares, k logits for the
  classification methods (k = 625 for end to end in Table 2).

As in ``nn.PackedNetwork``, every parameter has a leading run dimension R and each run draws its
initial weights from its own generator, so a run's numbers do not depend on its pack.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..nn import uniform_init


class PackedAdaLNHead(torch.nn.Module):
    """R adaLN MLP heads. ``forward(e)``: e is ``[R, B, cond_dim]`` or ``[B, cond_dim]``; returns ``[R, B, out]``."""

    def __init__(
        self,
        cond_dim: int,
        output_size: int,
        init_generators,
        width: int = 512,
        depth: int = 12,
        expansion: int = 4,
        dtype=torch.float32,
        device="cpu",
    ):
        super().__init__()
        self.runs, self.width, self.depth, self.output_size = len(init_generators), width, depth, output_size
        W, H = width, expansion * width

        def linear(fan_in, fan_out, zero=False):
            """[R, in, out] weights and [R, 1, out] biases, PyTorch's Linear initialisation per run."""
            if zero:
                w = torch.zeros(self.runs, fan_in, fan_out, dtype=torch.float64)
                b = torch.zeros(self.runs, 1, fan_out, dtype=torch.float64)
            else:
                w = torch.stack([uniform_init((fan_out, fan_in), fan_in, g).T for g in init_generators])
                b = torch.stack([uniform_init((fan_out,), fan_in, g) for g in init_generators]).unsqueeze(1)
            return torch.nn.Parameter(w.to(device, dtype).contiguous()), torch.nn.Parameter(b.to(device, dtype))

        self.start = torch.nn.Parameter(
            torch.stack([torch.randn(1, W, generator=g, dtype=torch.float64) * 0.02 for g in init_generators]).to(
                device, dtype
            )
        )
        self.cond_w, self.cond_b = linear(cond_dim, W)
        self.ada_w, self.ada_b = torch.nn.ParameterList(), torch.nn.ParameterList()
        self.fc1_w, self.fc1_b = torch.nn.ParameterList(), torch.nn.ParameterList()
        self.fc2_w, self.fc2_b = torch.nn.ParameterList(), torch.nn.ParameterList()
        for _ in range(depth):
            for ws, bs, args in (
                (self.ada_w, self.ada_b, (W, 3 * W)),
                (self.fc1_w, self.fc1_b, (W, H)),
                (self.fc2_w, self.fc2_b, (H, W, True)),
            ):
                w, b = linear(*args)
                ws.append(w)
                bs.append(b)
        self.final_ada_w, self.final_ada_b = linear(W, 2 * W)
        self.out_w, self.out_b = linear(W, output_size)

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        R = self.runs
        if e.dim() == 2:
            e = e.unsqueeze(0).expand(R, *e.shape)
        e = e.to(self.cond_w.dtype)
        cond = F.silu(torch.baddbmm(self.cond_b, e, self.cond_w))
        h = self.start.expand(R, e.shape[1], self.width)
        for i in range(self.depth):
            shift, scale, gate = torch.baddbmm(self.ada_b[i], cond, self.ada_w[i]).chunk(3, dim=-1)
            u = F.layer_norm(h, (self.width,)) * (1 + scale) + shift
            u = torch.baddbmm(self.fc2_b[i], F.gelu(torch.baddbmm(self.fc1_b[i], u, self.fc1_w[i])), self.fc2_w[i])
            h = h + gate * u
        shift, scale = torch.baddbmm(self.final_ada_b, cond, self.final_ada_w).chunk(2, dim=-1)
        h = F.layer_norm(h, (self.width,)) * (1 + scale) + shift
        return torch.baddbmm(self.out_b, h, self.out_w)


def parameter_count(head: PackedAdaLNHead) -> int:
    """Parameters of one run of the pack."""
    return sum(p.numel() for p in head.parameters()) // head.runs
