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
    "GRIDS",
    "DECODER_INITS",
    "initial_softmax_decoder",
    "kmeans_centroids",
    "initial_codec",
    "pretrain_codec",
]


def _squared_distances(y: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """||y - c_i||^2 for every row of y and every centroid: ``[..., n, k]``."""
    return ((y.unsqueeze(-2) - centroids.unsqueeze(-3)) ** 2).sum(-1)


# A target within this fraction of a bin width below a bin edge counts as on the edge: targets scaled
# to [0, 1] in float32 land a few 1e-7 away from the edges they sit on in exact arithmetic.
EDGE_TOLERANCE = 1e-4


def grid_bin_index(
    y: torch.Tensor, first_centre: float | torch.Tensor, spacing: float | torch.Tensor, k: int
) -> torch.Tensor:
    """The bin y falls into on a uniform 1-D grid (section 2.2), with half-open bins
    [c_i - delta/2, c_i + delta/2): a target on an edge goes to the upper bin, and targets below the
    first or above the last edge (1.0 on a grid of midpoints) to the first or last bin. ``y`` is
    ``[..., n, 1]``; returns ``[..., n]``."""
    position = (y[..., 0] - first_centre) / spacing + 0.5
    return torch.floor(position + EDGE_TOLERANCE).clamp(0, k - 1).long()


def hard_binning_encode(y: torch.Tensor, centroids: torch.Tensor, spacing: float | None = None) -> torch.Tensor:
    """Hard binning psi_c(y) = e_i (section 3.1, the target of eq. 2): "the bin y falls into".

    With ``spacing`` (m = 1, ``centroids`` a uniform grid, ``grid_centroids``) the bins are half-open,
    [c_i - delta/2, c_i + delta/2) (``grid_bin_index``), so a target exactly on an edge goes to the
    upper bin. Without it, i = argmin_i ||y - c_i||^2: the Voronoi cells of the k-means++ centroids
    (m > 1), where a tie (measure zero) goes to the lower index.
    """
    k = centroids.shape[-2]
    if spacing is not None:
        if centroids.shape[-1] != 1:
            raise ValueError(f"half-open grid bins need m = 1 centroids, got m = {centroids.shape[-1]}")
        index = grid_bin_index(y, centroids[..., :1, 0], spacing, k)
    else:
        index = _squared_distances(y, centroids).argmin(-1)
    return torch.nn.functional.one_hot(index, k).to(y.dtype)


def gaussian_encode(y: torch.Tensor, centroids: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
    """Soft encoder, eq. (3): softmax_i( -||c_i - y||^2 / (2 sigma^2) )."""
    sigma = torch.as_tensor(sigma, dtype=y.dtype, device=y.device)
    return torch.softmax(-_squared_distances(y, centroids) / (2 * sigma**2), dim=-1)


def gaussian_encode_inner_product(
    y: torch.Tensor, centroids: torch.Tensor, sigma: float | torch.Tensor
) -> torch.Tensor:
    """Soft encoder, eq. (4): softmax_i( (c_i^T y - ||c_i||^2 / 2) / sigma^2 ).

    Equal to eq. (3): the logits differ by ||y||^2 / (2 sigma^2), which softmax ignores.
    """
    sigma = torch.as_tensor(sigma, dtype=y.dtype, device=y.device)
    logits = (y @ centroids.transpose(-1, -2) - 0.5 * (centroids**2).sum(-1).unsqueeze(-2)) / sigma**2
    return torch.softmax(logits, dim=-1)


def gaussian_to_softmax_weights(
    centroids: torch.Tensor, sigma: float | torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
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
    def from_dict(cls, d, dtype=torch.float64) -> Codec:
        t = lambda a: torch.as_tensor(np.asarray(a), dtype=dtype)  # noqa: E731
        return cls(t(d["w_lin"]), t(d["w_bias"]), t(d["mu"]), t(d["centroids"]), float(np.asarray(d["spacing"])))

    def save(self, path) -> None:
        from .io import atomic_save_npz

        atomic_save_npz(path, **self.to_dict())

    @classmethod
    def load(cls, path, dtype=torch.float64) -> Codec:
        """A codec .npz (rule pretrain_codec); a damaged one raises DamagedFile naming it."""
        from .io import load_npz

        return cls.from_dict(load_npz(path, ["w_lin", "w_bias", "mu", "centroids", "spacing"]), dtype)


GRIDS = ("endpoints", "midpoints")


def grid_centroids(y: np.ndarray, k: int, grid: str = "endpoints") -> tuple[np.ndarray, float]:
    """Uniform grid for m = 1 (section 3.3) over the training range [lo, hi] = [min y, max y], and its
    spacing delta_mu. The paper does not say where the k points sit; two readings:

    - "endpoints": c_i = lo + i delta_mu, delta_mu = (hi - lo) / (k - 1): the first and last points
      are the ends of the range, so a decoder on the grid can predict every training target (as in
      the code of Stewart et al., 2023). The bins [c_i - delta/2, c_i + delta/2) then reach delta/2
      beyond the range.
    - "midpoints": c_i = lo + (i + 1/2) delta_mu, delta_mu = (hi - lo) / k: the midpoints of k equal
      bins that tile the range (section 2.2); predictions then stay within [lo + delta/2, hi - delta/2].
    """
    if grid not in GRIDS:
        raise ValueError(f"unknown grid {grid!r}; expected one of {', '.join(GRIDS)}")
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    lo, hi = float(y.min()), float(y.max())
    width = hi - lo if hi > lo else 1.0
    if grid == "endpoints":
        spacing = width / (k - 1)
        centroids = lo + np.arange(k) * spacing
    else:
        spacing = width / k
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


def initial_codec(
    y_train: np.ndarray, k: int, lambda_sigma: float = 1.0, seed: int = 0, grid: str = "endpoints"
) -> Codec:
    """The initialisation of section 3.3: c = mu on a grid (m = 1, ``grid_centroids``: "endpoints" or
    "midpoints") or k-means++ centroids (m > 1, where ``grid`` plays no part), sigma = lambda_sigma *
    delta_mu, and w from c through eq. (4) -> (5)."""
    y = np.asarray(y_train, dtype=np.float64)
    y = y.reshape(len(y), -1)
    if k < 2:
        raise ValueError(f"k must be at least 2, got {k}")
    if y.shape[1] == 1:
        centroids, spacing = grid_centroids(y, k, grid)
    else:
        if len(np.unique(y, axis=0)) < k:
            raise ValueError(f"k-means needs at least k={k} distinct targets, got {len(np.unique(y, axis=0))}")
        centroids, spacing = kmeans_centroids(y, k, seed)
    c = torch.as_tensor(centroids, dtype=torch.float64)
    w_lin, w_bias = gaussian_to_softmax_weights(c, lambda_sigma * spacing)
    return Codec(w_lin=w_lin, w_bias=w_bias, mu=c.clone(), centroids=c, spacing=spacing)


DECODER_INITS = ("grid", "zeros", "random", "linear")
RANDOM_DECODER_SCALE = 0.01  # ours: standard deviation of the "random" decoder initialisation


def initial_softmax_decoder(codec: Codec, init: str = "grid", seed: int = 0) -> torch.Tensor:
    """The initial decoder mu [k, m] of baseline 4, least squares with a softmax layer (eq. 9); the
    paper does not say how it starts. "grid": the centroids of section 3.3 (c, as the codec methods
    start); "zeros": mu = 0 (every prediction 0 at the start, the gradient to the network 0 until mu
    spreads); "random": N(0, 0.01^2) entries from a generator seeded with ``seed`` (a small random
    linear layer); "linear": U(-1/sqrt(k), 1/sqrt(k)), the default initialisation of a torch
    ``nn.Linear(k, m)`` layer, from the same generator."""
    if init == "grid":
        return codec.mu.clone()
    if init == "zeros":
        return torch.zeros_like(codec.mu)
    if init == "random":
        gen = torch.Generator().manual_seed(seed)
        return RANDOM_DECODER_SCALE * torch.randn(codec.mu.shape, generator=gen, dtype=torch.float64).to(codec.mu)
    if init == "linear":
        gen = torch.Generator().manual_seed(seed)
        bound = 1 / math.sqrt(codec.k)
        return ((2 * torch.rand(codec.mu.shape, generator=gen, dtype=torch.float64) - 1) * bound).to(codec.mu)
    raise ValueError(f"unknown softmax decoder initialisation {init!r}; expected one of {', '.join(DECODER_INITS)}")


def pretrain_codec(
    codec: Codec,
    y_train: np.ndarray,
    alpha: float = 1e-6,
    steps: int = 2000,
    lr: float = 1e-2,
    weight_decay: float = 1e-4,
    weight_decay_mode: str = "l2",
    batch_size: int | None = None,
    seed: int = 0,
    log=None,
) -> tuple[Codec, dict]:
    """Stage 1 of section 3.3: minimise eq. (7) (entropy penalised, see its sign note) over (w, mu) on the training targets with Adam.

    Full batch when ``batch_size`` is None. ``weight_decay_mode``: "l2" (torch.optim.Adam, the decay
    added to the gradient) or "decoupled" (torch.optim.AdamW), as for training (``PackedAdam``). Returns the trained codec and a summary with the
    auto-encoding error (eq. 6) and the mean entropy of the codes before and after.
    """
    y = torch.as_tensor(np.asarray(y_train, dtype=np.float64).reshape(len(y_train), -1))
    w_lin = codec.w_lin.clone().requires_grad_(True)
    w_bias = codec.w_bias.clone().requires_grad_(True)
    mu = codec.mu.clone().requires_grad_(True)
    params = [w_lin, w_bias, mu]
    if weight_decay_mode not in ("l2", "decoupled"):
        raise ValueError(f"unknown weight_decay_mode {weight_decay_mode!r}; expected 'l2' or 'decoupled'")
    adam = torch.optim.Adam if weight_decay_mode == "l2" else torch.optim.AdamW
    opt = adam(params, lr=lr, weight_decay=weight_decay)
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
            log(f"pretrain step {step + 1}/{steps}: eq.(7) loss {float(loss.detach()):.6g}")
    report.update(summary("final"))
    report.update(steps=steps, alpha=alpha, lr=lr)
    trained = Codec(w_lin.detach(), w_bias.detach(), mu.detach(), codec.centroids.clone(), codec.spacing)
    if not math.isfinite(report["final_autoencoding_error"]):
        raise FloatingPointError("codec pre-training diverged (non-finite auto-encoding error)")
    return trained, report


def unit_square_grid_codec(k: int, m: int = 2, lambda_sigma: float = 1.0, grid: str = "endpoints") -> Codec:
    """A uniform grid of k = g^m centroids over the unit cube [0, 1]^m, placed like the 1-D grid of
    ``grid_centroids`` (config key codec.grid): on each axis i / (g - 1), delta_mu = 1 / (g - 1)
    ("endpoints"), or the cell midpoints (i + 1/2) / g, delta_mu = 1 / g ("midpoints").

    Table 2's end-to-end run (section 4): k = 625, mu initialised as a uniform 25 x 25 grid, the targets
    (latitude, longitude) being scaled to [0, 1]. sigma = lambda_sigma * delta_mu and w through eq. (4) -> (5).
    """
    g = int(round(k ** (1.0 / m)))
    if g**m != k or g < 2:
        raise ValueError(
            f"k = {k} is not g^{m} for an integer g >= 2 (a {m}-D uniform grid needs k = 4, 9, ..., 625, ...)"
        )
    if grid not in GRIDS:
        raise ValueError(f"unknown grid {grid!r}; expected one of {', '.join(GRIDS)}")
    spacing = 1.0 / (g - 1) if grid == "endpoints" else 1.0 / g
    axis = np.arange(g) * spacing if grid == "endpoints" else (np.arange(g) + 0.5) * spacing
    mesh = np.stack(np.meshgrid(*([axis] * m), indexing="ij"), axis=-1).reshape(k, m)
    c = torch.as_tensor(mesh, dtype=torch.float64)
    w_lin, w_bias = gaussian_to_softmax_weights(c, lambda_sigma * spacing)
    return Codec(w_lin=w_lin, w_bias=w_bias, mu=c.clone(), centroids=c, spacing=spacing)


def pretrain_codec_files(
    y_train: np.ndarray, k: int, settings: dict, seed: int, out_codec, out_report, dataset: str, log=print
):
    """Stage 1 of section 3.3 as a workflow job: the initialisation, eq. (7) pre-training with the
    config's ``codec`` settings, and the codec (``Codec.save``) and its report (JSON) written."""
    from .io import atomic_write_json

    codec = initial_codec(y_train, k, lambda_sigma=settings["init_lambda_sigma"], seed=seed, grid=settings["grid"])
    trained, report = pretrain_codec(
        codec,
        y_train,
        alpha=settings["alpha"],
        steps=settings["pretrain"]["steps"],
        lr=settings["pretrain"]["lr"],
        weight_decay=settings["weight_decay"],
        weight_decay_mode=settings["weight_decay_mode"],
        batch_size=settings["pretrain"]["batch_size"],
        log=log,
    )
    log(
        f"codec k = {k}: auto-encoding error (eq. 6) {report['initial_autoencoding_error']:.3g} -> "
        f"{report['final_autoencoding_error']:.3g}, mean entropy {report['initial_entropy']:.3g} -> {report['final_entropy']:.3g}"
    )
    trained.save(out_codec)
    atomic_write_json(out_report, report | {"k": k, "dataset": dataset})
    return trained
