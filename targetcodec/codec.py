"""Target codecs: encoders psi: R^m -> Delta_k and linear decoders mu: Delta_k -> R^m.

Every function names the equation of "Beyond Binning: Soft Task Reformulation for Deep
Regression" (Stewart, Bach, Berthet, AISTATS 2026) that it implements. Shapes:
targets ``y`` are ``[..., n, m]``, distributions ``[..., n, k]``, centroids and decoders
``[..., k, m]``, encoder weights ``w_lin`` ``[..., m, k]`` and ``w_bias`` ``[..., k]``. A leading
``...`` is a run dimension when a pack of runs is trained at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

__all__ = [
    "Codec",
    "hard_binning_encode",
    "gaussian_encode",
    "gaussian_encode_inner_product",
    "gaussian_to_softmax_weights",
    "softmax_encoder_logits",
    "softmax_encode",
    "decode",
    "entropy",
    "entropy_from_log",
    "kl_divergence",
    "autoencoding_loss",
    "entropy_penalised_autoencoding_loss",
    "grid_centroids",
    "kmeans_centroids",
    "initial_codec",
    "pretrain_codec",
]


def _squared_distances(y: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """||y - c_i||^2 for every row of y and every centroid: ``[..., n, k]``."""
    return ((y.unsqueeze(-2) - centroids.unsqueeze(-3)) ** 2).sum(-1)


def hard_binning_encode(y: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """Hard binning psi_c(y) = e_i, i = argmin_i ||y - c_i||^2 (section 3.1, the target of eq. 2).

    For m = 1 and a uniform grid of bin midpoints this is the usual binning of section 2.2.
    """
    nearest = _squared_distances(y, centroids).argmin(-1)
    return torch.nn.functional.one_hot(nearest, centroids.shape[-2]).to(y.dtype)


def gaussian_encode(y: torch.Tensor, centroids: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
    """Soft encoder, eq. (3): softmax_i( -||c_i - y||^2 / (2 sigma^2) )."""
    sigma = torch.as_tensor(sigma, dtype=y.dtype, device=y.device)
    return torch.softmax(-_squared_distances(y, centroids) / (2 * sigma**2), dim=-1)


def gaussian_encode_inner_product(y: torch.Tensor, centroids: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
    """Soft encoder, eq. (4): softmax_i( (c_i^T y - ||c_i||^2 / 2) / sigma^2 ).

    Equal to eq. (3): the logits differ by ||y||^2 / (2 sigma^2), which softmax ignores.
    """
    sigma = torch.as_tensor(sigma, dtype=y.dtype, device=y.device)
    logits = (y @ centroids.transpose(-1, -2) - 0.5 * (centroids**2).sum(-1).unsqueeze(-2)) / sigma**2
    return torch.softmax(logits, dim=-1)


def gaussian_to_softmax_weights(centroids: torch.Tensor, sigma: float | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The change of variable from eq. (4) to eq. (5): w_lin = c^T / sigma^2, w_bias = -||c_i||^2 / (2 sigma^2)."""
    sigma = torch.as_tensor(sigma, dtype=centroids.dtype, device=centroids.device)
    w_lin = centroids.transpose(-1, -2) / sigma**2
    w_bias = -0.5 * (centroids**2).sum(-1) / sigma**2
    return w_lin, w_bias


def softmax_encoder_logits(y: torch.Tensor, w_lin: torch.Tensor, w_bias: torch.Tensor) -> torch.Tensor:
    """The logits w_lin^T y + w_bias of eq. (5)."""
    return y @ w_lin + w_bias.unsqueeze(-2)


def softmax_encode(y: torch.Tensor, w_lin: torch.Tensor, w_bias: torch.Tensor) -> torch.Tensor:
    """Learnable softmax encoder, eq. (5): psi_w(y) = softmax(w_lin^T y + w_bias)."""
    return torch.softmax(softmax_encoder_logits(y, w_lin, w_bias), dim=-1)


def decode(pi: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
    """Linear decoder mu^T pi (section 2.2, c^T pi_theta(x); section 3.3, mu^T psi_w(y))."""
    return pi @ mu


def entropy(p: torch.Tensor) -> torch.Tensor:
    """H(p) = -sum_i p_i log p_i over the last dimension (Notations), with 0 log 0 = 0."""
    return -torch.special.xlogy(p, p).sum(-1)


def entropy_from_log(log_p: torch.Tensor) -> torch.Tensor:
    """H(p) from log p (a log-softmax): finite with a finite gradient even where p underflows to 0."""
    return -(log_p.exp() * log_p).sum(-1)


def kl_divergence(p: torch.Tensor, log_q: torch.Tensor, log_p: torch.Tensor | None = None) -> torch.Tensor:
    """KL(p || q) = sum_i p_i log(p_i / q_i) over the last dimension, from log q (eq. 2).

    Taking log q (log-softmax of the logits) keeps the loss finite where q underflows. Give log p
    when p is differentiated (a trained encoder): the gradient of p log p at p = 0 is not finite.
    For a one-hot p the entropy term vanishes and this is the cross-entropy -p^T log q.
    """
    plogp = torch.special.xlogy(p, p) if log_p is None else p * log_p
    return (plogp - p * log_q).sum(-1)


def autoencoding_loss(y: torch.Tensor, w_lin: torch.Tensor, w_bias: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
    """Eq. (6) per target: L(y - mu^T psi_w(y)) with the square loss L = ||.||_2^2."""
    return ((y - decode(softmax_encode(y, w_lin, w_bias), mu)) ** 2).sum(-1)


def entropy_penalised_autoencoding_loss(
    y: torch.Tensor, w_lin: torch.Tensor, w_bias: torch.Tensor, mu: torch.Tensor, alpha: float | torch.Tensor
) -> torch.Tensor:
    """Eq. (7) per target, the entropy-penalised auto-encoding loss: L(y - mu^T psi_w(y)) + alpha H(psi_w(y)).

    Sign: the paper prints "- alpha H" but says the term *penalises* entropy to keep the codes away
    from uniform; minimising "- alpha H" with alpha > 0 would raise the entropy instead. We add
    alpha H, which does what the text says (tests/test_codec.py checks that it lowers the entropy).
    """
    log_psi = torch.log_softmax(softmax_encoder_logits(y, w_lin, w_bias), dim=-1)
    return ((y - decode(log_psi.exp(), mu)) ** 2).sum(-1) + alpha * entropy_from_log(log_psi)


@dataclass
class Codec:
    """A softmax encoder (eq. 5) with a linear decoder mu, as tensors.

    ``centroids`` are the c of eq. (3)-(4) it was initialised from and ``spacing`` the delta_mu
    of section 3.3; both describe the initial grid and stay fixed when the codec is trained.
    """

    w_lin: torch.Tensor  # [m, k]
    w_bias: torch.Tensor  # [k]
    mu: torch.Tensor  # [k, m]
    centroids: torch.Tensor  # [k, m]
    spacing: float

    @property
    def k(self) -> int:
        return self.mu.shape[0]

    @property
    def m(self) -> int:
        return self.mu.shape[1]

    def encode(self, y: torch.Tensor) -> torch.Tensor:
        return softmax_encode(y, self.w_lin.to(y), self.w_bias.to(y))

    def decode(self, pi: torch.Tensor) -> torch.Tensor:
        return decode(pi, self.mu.to(pi))

    def autoencoding_error(self, y: torch.Tensor) -> float:
        """Mean of eq. (6) over the rows of y."""
        return float(autoencoding_loss(y, self.w_lin.to(y), self.w_bias.to(y), self.mu.to(y)).mean())

    def to_dict(self) -> dict:
        return {
            "w_lin": self.w_lin.detach().cpu().numpy(),
            "w_bias": self.w_bias.detach().cpu().numpy(),
            "mu": self.mu.detach().cpu().numpy(),
            "centroids": self.centroids.detach().cpu().numpy(),
            "spacing": np.float64(self.spacing),
        }

    @classmethod
    def from_dict(cls, d, dtype=torch.float64) -> "Codec":
        t = lambda a: torch.as_tensor(np.asarray(a), dtype=dtype)  # noqa: E731
        return cls(t(d["w_lin"]), t(d["w_bias"]), t(d["mu"]), t(d["centroids"]), float(np.asarray(d["spacing"])))

    def save(self, path) -> None:
        from .io import atomic_save_npz

        atomic_save_npz(path, **self.to_dict())

    @classmethod
    def load(cls, path, dtype=torch.float64) -> "Codec":
        """A codec .npz (rule pretrain_codec); a damaged one raises DamagedFile naming it."""
        from .io import load_npz

        return cls.from_dict(load_npz(path, ["w_lin", "w_bias", "mu", "centroids", "spacing"]), dtype)


def grid_centroids(y: np.ndarray, k: int) -> tuple[np.ndarray, float]:
    """Uniform grid for m = 1 (section 3.3): the k bin midpoints of [min y, max y] and their spacing delta_mu.

    c_i = min + (i + 1/2) delta_mu with delta_mu = (max - min) / k, so that nearest-centroid
    assignment (eq. 2) is uniform binning of the training range (section 2.2).
    """
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    lo, hi = float(y.min()), float(y.max())
    spacing = (hi - lo) / k if hi > lo else 1.0 / k
    centroids = lo + (np.arange(k) + 0.5) * spacing
    return centroids.reshape(k, 1), spacing


def kmeans_centroids(y: np.ndarray, k: int, seed: int = 0) -> tuple[np.ndarray, float]:
    """Centroids for m > 1 (section 3.3): k-means with k-means++ seeding (scikit-learn).

    delta_mu is the mean intra-cluster distance: the mean distance of each target to its centroid.
    """
    from sklearn.cluster import KMeans

    y = np.asarray(y, dtype=np.float64)
    km = KMeans(n_clusters=k, init="k-means++", n_init=1, random_state=seed).fit(y)
    centroids = km.cluster_centers_
    spacing = float(np.linalg.norm(y - centroids[km.labels_], axis=1).mean())
    return centroids, max(spacing, 1e-12)


def initial_codec(y_train: np.ndarray, k: int, lambda_sigma: float = 1.0, seed: int = 0) -> Codec:
    """The initialisation of section 3.3: c = mu on a grid (m = 1) or k-means++ centroids (m > 1),
    sigma = lambda_sigma * delta_mu, and w from c through eq. (4) -> (5)."""
    y = np.asarray(y_train, dtype=np.float64)
    y = y.reshape(len(y), -1)
    if k < 2:
        raise ValueError(f"k must be at least 2, got {k}")
    if y.shape[1] == 1:
        centroids, spacing = grid_centroids(y, k)
    else:
        if len(np.unique(y, axis=0)) < k:
            raise ValueError(f"k-means needs at least k={k} distinct targets, got {len(np.unique(y, axis=0))}")
        centroids, spacing = kmeans_centroids(y, k, seed)
    c = torch.as_tensor(centroids, dtype=torch.float64)
    w_lin, w_bias = gaussian_to_softmax_weights(c, lambda_sigma * spacing)
    return Codec(w_lin=w_lin, w_bias=w_bias, mu=c.clone(), centroids=c, spacing=spacing)


def pretrain_codec(
    codec: Codec,
    y_train: np.ndarray,
    alpha: float = 1e-6,
    steps: int = 2000,
    lr: float = 1e-2,
    weight_decay: float = 1e-4,
    batch_size: int | None = None,
    seed: int = 0,
    log=None,
) -> tuple[Codec, dict]:
    """Stage 1 of section 3.3: minimise eq. (7) (entropy penalised, see its sign note) over (w, mu) on the training targets with Adam.

    Full batch when ``batch_size`` is None. Returns the trained codec and a summary with the
    auto-encoding error (eq. 6) and the mean entropy of the codes before and after.
    """
    y = torch.as_tensor(np.asarray(y_train, dtype=np.float64).reshape(len(y_train), -1))
    w_lin = codec.w_lin.clone().requires_grad_(True)
    w_bias = codec.w_bias.clone().requires_grad_(True)
    mu = codec.mu.clone().requires_grad_(True)
    params = [w_lin, w_bias, mu]
    opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(seed)

    def summary(prefix):
        with torch.no_grad():
            psi = softmax_encode(y, w_lin, w_bias)
            return {
                f"{prefix}_autoencoding_error": float(((y - decode(psi, mu)) ** 2).sum(-1).mean()),
                f"{prefix}_entropy": float(entropy(psi).mean()),
            }

    report = summary("initial")
    for step in range(steps):
        batch = y if batch_size is None else y[torch.randint(len(y), (batch_size,), generator=gen)]
        loss = entropy_penalised_autoencoding_loss(batch, w_lin, w_bias, mu, alpha).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if log is not None and (step % max(1, steps // 10) == 0 or step == steps - 1):
            log(f"pretrain step {step + 1}/{steps}: eq.(7) loss {float(loss):.6g}")
    report.update(summary("final"))
    report.update(steps=steps, alpha=alpha, lr=lr)
    trained = Codec(w_lin.detach(), w_bias.detach(), mu.detach(), codec.centroids.clone(), codec.spacing)
    if not math.isfinite(report["final_autoencoding_error"]):
        raise FloatingPointError("codec pre-training diverged (non-finite auto-encoding error)")
    return trained, report


def unit_square_grid_codec(k: int, m: int = 2, lambda_sigma: float = 1.0) -> Codec:
    """A uniform grid of k = g^m centroids over the unit cube [0, 1]^m, placed like the 1-D grid of
    ``grid_centroids``: the cell midpoints (i + 1/2) / g of each axis, delta_mu = 1 / g.

    Table 2's end-to-end run (section 4): k = 625, mu initialised as a uniform 25 x 25 grid, the targets
    (latitude, longitude) being scaled to [0, 1]. sigma = lambda_sigma * delta_mu and w through eq. (4) -> (5).
    """
    g = int(round(k ** (1.0 / m)))
    if g**m != k or g < 2:
        raise ValueError(f"k = {k} is not g^{m} for an integer g >= 2 (a {m}-D uniform grid needs k = 4, 9, ..., 625, ...)")
    axis = (np.arange(g) + 0.5) / g
    mesh = np.stack(np.meshgrid(*([axis] * m), indexing="ij"), axis=-1).reshape(k, m)
    c = torch.as_tensor(mesh, dtype=torch.float64)
    w_lin, w_bias = gaussian_to_softmax_weights(c, lambda_sigma / g)
    return Codec(w_lin=w_lin, w_bias=w_bias, mu=c.clone(), centroids=c, spacing=1.0 / g)
