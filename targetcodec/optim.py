"""Adam and gradient clipping for packed parameters: per run, as if each run had its own optimiser.

Adam is elementwise, so one Adam over stacked parameters equals R independent Adams when the
learning rate is a per-run tensor broadcast over the run dimension. Gradient clipping is the one
step that mixes elements of a run: the norm is taken per run over all of that run's parameters.
The update follows torch.optim.Adam (weight decay "l2": added to the gradient, so that the loss's
scale sets how strongly it acts) or torch.optim.AdamW (weight decay "decoupled": p <- p (1 - lr wd)
before the Adam step, Loshchilov and Hutter, 2019), chosen per tensor. The paper says "Adam with L2
weight decay" (section 4) without saying which.
"""

from __future__ import annotations

import math

import torch


def clip_grad_norm_per_run(grads: list[torch.Tensor], max_norm: float) -> torch.Tensor:
    """Scale each run's gradients so that their joint 2-norm is at most max_norm (unit clipping,
    section 4), as torch.nn.utils.clip_grad_norm_ does for one run. Returns the norms [R]."""
    R = grads[0].shape[0]
    norms = torch.stack([g.reshape(R, -1).norm(dim=1) for g in grads], dim=1).norm(dim=1)
    coef = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    torch._foreach_mul_(grads, [coef.reshape(R, *([1] * (g.dim() - 1))) for g in grads])
    return norms


WEIGHT_DECAY_MODES = ("l2", "decoupled")


class PackedAdam:
    """Adam (Kingma and Ba, 2014) with per-run learning rates and per-tensor weight decay, coupled
    ("l2", torch.optim.Adam) or decoupled ("decoupled", torch.optim.AdamW)."""

    def __init__(
        self,
        params: list[torch.Tensor],
        weight_decays: list[float],
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay_modes: list[str] | None = None,
    ):
        self.params = params
        self.weight_decays = weight_decays
        self.weight_decay_modes = list(weight_decay_modes) if weight_decay_modes is not None else ["l2"] * len(params)
        if len(self.weight_decay_modes) != len(params):
            raise ValueError(f"{len(self.weight_decay_modes)} weight decay modes for {len(params)} parameters")
        for mode in self.weight_decay_modes:
            if mode not in WEIGHT_DECAY_MODES:
                raise ValueError(f"unknown weight_decay_mode {mode!r}; expected one of {', '.join(WEIGHT_DECAY_MODES)}")
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.step_count = 0
        self.exp_avg = [torch.zeros_like(p) for p in params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in params]

    @torch.no_grad()
    def step(self, grads: list[torch.Tensor], lr: torch.Tensor) -> None:
        """One update; ``lr`` is a tensor [R] of this step's learning rate for each run. The moments and
        the update are multi-tensor (``torch._foreach_*``) operations: a few kernel launches for all
        parameters instead of several per parameter, with the same arithmetic in the same order."""
        self.step_count += 1
        bias1 = 1 - self.beta1**self.step_count
        bias2_sqrt = math.sqrt(1 - self.beta2**self.step_count)
        per_run = lambda t, p: t.reshape(-1, *([1] * (p.dim() - 1)))  # noqa: E731  [R] -> broadcast over p
        grads = list(grads)
        for i, (p, wd, mode) in enumerate(zip(self.params, self.weight_decays, self.weight_decay_modes)):
            if wd and mode == "l2":
                grads[i] = grads[i].add(p, alpha=wd)
            elif wd:
                p.mul_(1 - per_run(lr * wd, p))
        torch._foreach_lerp_(self.exp_avg, grads, 1 - self.beta1)
        torch._foreach_mul_(self.exp_avg_sq, self.beta2)
        torch._foreach_addcmul_(self.exp_avg_sq, grads, grads, value=1 - self.beta2)
        denom = torch._foreach_sqrt(self.exp_avg_sq)
        torch._foreach_div_(denom, bias2_sqrt)
        torch._foreach_add_(denom, self.eps)
        step_size = lr / bias1
        update = torch._foreach_mul(self.exp_avg, [per_run(step_size, p) for p in self.params])
        torch._foreach_div_(update, denom)
        torch._foreach_sub_(self.params, update)

    def keep_runs(self, index: torch.Tensor, params: list[torch.Tensor]) -> None:
        """Continue with the runs at ``index`` only; ``params`` are their parameters, in order."""
        self.params = params
        self.exp_avg = [m[index] for m in self.exp_avg]
        self.exp_avg_sq = [v[index] for v in self.exp_avg_sq]

    def state_dict(self) -> dict:
        return {"step_count": self.step_count, "exp_avg": self.exp_avg, "exp_avg_sq": self.exp_avg_sq}

    def load_state_dict(self, state: dict) -> None:
        self.step_count = state["step_count"]
        for dst, src in zip(self.exp_avg + self.exp_avg_sq, state["exp_avg"] + state["exp_avg_sq"]):
            dst.copy_(src)


def learning_rate_factor(step: int, total_steps: int, schedule: str, warmup_fraction: float) -> float:
    """Multiplier of the maximum learning rate at ``step`` (0-based).

    "cosine": linear warm-up over the first ``warmup_fraction`` of the steps, then cosine decay to
    zero at the last step (the paper sweeps a *maximum* learning rate; its schedule is not given).
    "constant": always 1.
    """
    if schedule == "constant":
        return 1.0
    if schedule != "cosine":
        raise ValueError(f"unknown learning-rate schedule {schedule!r} (expected 'cosine' or 'constant')")
    warmup = max(1, int(round(warmup_fraction * total_steps)))
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total_steps - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


class PackedAdamW(PackedAdam):
    """AdamW (Loshchilov and Hutter, 2019) per run: ``PackedAdam`` with every tensor's weight decay
    decoupled from the gradient, as torch.optim.AdamW does (p <- p - lr * wd * p before the Adam
    step). The OSV5M head of Appendix C ("weight decay of 0.05 for the ViT-L, as in Dufour et al.,
    2024") trains with it."""

    def __init__(self, params: list[torch.Tensor], weight_decays: list[float], betas=(0.9, 0.999), eps=1e-8):
        super().__init__(params, weight_decays, betas, eps, weight_decay_modes=["decoupled"] * len(params))
