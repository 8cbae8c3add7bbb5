"""Training objectives of every method, per sample (shape ``[..., n]``); the trainer averages them.

Equation numbers refer to "Beyond Binning" (AISTATS 2026). Predictions ``z`` and targets ``y`` are
``[..., n, m]``; logits ``[..., n, k]``; per-run weights (lambdas) broadcast over a leading run dimension.
"""

from __future__ import annotations

import torch

from .codec import decode, entropy_from_log, kl_divergence, softmax_encoder_logits


def square_loss(y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """L(y - z) = ||y - z||_2^2 (section 2.1)."""
    return ((y - z) ** 2).sum(-1)


def least_squares_loss(y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Eq. (1) with the square loss: Baseline 1."""
    return square_loss(y, z)


def huber_loss(y: torch.Tensor, z: torch.Tensor, delta: float = 1.0) -> torch.Tensor:
    """Eq. (1) with the Huber loss (Huber, 1964), summed over target dimensions: Baseline 2.

    Quadratic (r^2 / 2) for |r| <= delta, linear beyond. With targets in [0, 1] and delta >= 1 it is
    half the square loss everywhere, the same minimiser as Baseline 1.
    """
    return torch.nn.functional.huber_loss(z, y, reduction="none", delta=delta).sum(-1)


def classification_loss(target_distribution: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Eq. (2): KL(psi(y) || softmax(g_theta(x))). Equals cross-entropy up to a constant for one-hot psi."""
    return kl_divergence(target_distribution, torch.log_softmax(logits, dim=-1))


def softmax_least_squares_loss(y: torch.Tensor, logits: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
    """Eq. (9), Appendix A: L(y - mu^T softmax(g_theta(x))) with mu trained jointly: Baseline 4."""
    return square_loss(y, decode(torch.softmax(logits, dim=-1), mu))


def end_to_end_loss(
    y: torch.Tensor,
    logits: torch.Tensor,
    w_lin: torch.Tensor,
    w_bias: torch.Tensor,
    mu: torch.Tensor,
    lambda_auto: torch.Tensor | float,
    lambda_kl: torch.Tensor | float,
    lambda_pred: torch.Tensor | float,
    alpha: float,
    kl_reduction: str = "sum",
) -> torch.Tensor:
    """Eq. (8), the end-to-end objective, per sample:

    lambda_auto [L(y - mu^T psi_w(y)) + alpha H(psi_w(y))] + lambda_KL KL(psi_w(y) || pi_theta(x))
    + lambda_pred L(y - mu^T pi_theta(x)), minimised over the codec (w, mu) and the network theta.
    The entropy term penalises entropy, as eq. (7) intends (see its sign note in codec.py).

    ``kl_reduction`` reads the KL term as eq. (2) writes it ("sum" over the k classes) or as
    PyTorch's ``F.kl_div(..., reduction="mean")`` computes it ("mean": divided by k), which turns the
    same lambda_KL into a weight lambda_KL / k (config key end_to_end.kl_reduction).
    """
    log_pi = torch.log_softmax(logits, dim=-1)
    log_psi = torch.log_softmax(softmax_encoder_logits(y, w_lin, w_bias), dim=-1)
    psi = log_psi.exp()
    auto = square_loss(y, decode(psi, mu)) + alpha * entropy_from_log(log_psi)  # eq. (7)
    kl = kl_divergence(psi, log_pi, log_psi)
    if kl_reduction == "mean":
        kl = kl / logits.shape[-1]
    elif kl_reduction != "sum":
        raise ValueError(f"kl_reduction must be 'sum' or 'mean', got {kl_reduction!r}")
    pred = square_loss(y, decode(log_pi.exp(), mu))
    return lambda_auto * auto + lambda_kl * kl + lambda_pred * pred
