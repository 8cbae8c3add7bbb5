"""Figures 2, 8 and 9: target encoders over a 2-D target space (m = 2, k = 9), for a fixed grid of
centroids (section 3.2) and for a codec learnt on 2-D targets (section 3.3, eq. 7)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.datasets import make_moons

from ..codec import Codec, gaussian_to_softmax_weights, initial_codec, pretrain_codec
from .figures import save

K = 9
GRID_POINTS = 200


def fixed_grid_codec(lambda_sigma: float = 0.5) -> Codec:
    """Nine centroids on a 3 x 3 grid of [0, 1]^2 with spacing 1/3; sigma = lambda_sigma * spacing (eq. 4 -> 5)."""
    axis = (np.arange(3) + 0.5) / 3
    c = torch.tensor([[a, b] for b in axis for a in axis], dtype=torch.float64)
    w_lin, w_bias = gaussian_to_softmax_weights(c, lambda_sigma / 3)
    return Codec(w_lin, w_bias, c.clone(), c, 1 / 3)


def learnt_codec(seed: int = 0, steps: int = 2000) -> tuple[Codec, np.ndarray]:
    """A codec pre-trained (eq. 7) on 2-D targets shaped like two moons, scaled to [0, 1]^2."""
    y, _ = make_moons(n_samples=2000, noise=0.08, random_state=seed)
    y = (y - y.min(0)) / (y.max(0) - y.min(0))
    trained, _ = pretrain_codec(initial_codec(y, K, lambda_sigma=1.0, seed=seed), y, alpha=1e-6, steps=steps, lr=1e-2)
    return trained, y


def _mesh():
    axis = np.linspace(-0.05, 1.05, GRID_POINTS)
    xx, yy = np.meshgrid(axis, axis)
    points = torch.tensor(np.stack([xx.ravel(), yy.ravel()], axis=1))
    return xx, yy, points


def _panels(axes, codec: Codec, y_star: np.ndarray, title: str, samples: np.ndarray | None):
    xx, yy, points = _mesh()
    psi = codec.encode(points).numpy().reshape(GRID_POINTS, GRID_POINTS, K)
    psi_star = codec.encode(torch.tensor(y_star[None])).numpy()[0]
    i = int(psi_star.argmax())
    mu = codec.mu.numpy()
    regions = psi.argmax(-1)
    ax = axes[0]
    ax.imshow(regions, origin="lower", extent=(-0.05, 1.05, -0.05, 1.05), cmap="tab10", alpha=0.35, vmin=0, vmax=9)
    ax.contour(xx, yy, (regions == i).astype(float), levels=[0.5], colors="red", linewidths=2)
    if samples is not None:
        ax.scatter(samples[:, 0], samples[:, 1], s=1, color="grey", alpha=0.3)
    ax.scatter(mu[:, 0], mu[:, 1], color="black", s=15)
    ax.scatter(*y_star, marker="x", color="blue", s=80, linewidths=2)
    ax.set_title(f"{title}: hard binning (class {i + 1} highlighted)")
    ax = axes[1]
    contour = ax.contourf(xx, yy, psi[..., i], levels=10, cmap="Reds")
    plt.colorbar(contour, ax=ax)
    ax.scatter(mu[:, 0], mu[:, 1], color="black", s=15)
    ax.scatter(*y_star, marker="x", color="blue", s=80, linewidths=2)
    ax.set_title(rf"soft encoder $\psi_w(\cdot)_{{{i + 1}}}$")
    ax = axes[2]
    ax.bar(np.arange(1, K + 1), psi_star, color=["red" if j == i else "grey" for j in range(K)])
    ax.set_xticks(np.arange(1, K + 1))
    ax.set_ylim(0, 1)
    ax.set_title(r"$\psi_w(y)$ in $\Delta_9$")
    for a in axes[:2]:
        a.set_xlim(-0.05, 1.05)
        a.set_ylim(-0.05, 1.05)
        a.set_aspect("equal")


def figure_encoders(stem: str, fixed: Codec, learnt: Codec, samples: np.ndarray, y_star=(0.42, 0.58)):
    """Figure 2: top, the fixed grid; bottom, the learnt codec. Left to right: hard binning regions,
    the contour of one coefficient of the soft encoder, and psi(y) for the target y (blue cross)."""
    fig, axes = plt.subplots(2, 3, figsize=(14, 9))
    _panels(axes[0], fixed, np.asarray(y_star), "fixed grid", None)
    _panels(axes[1], learnt, np.asarray(y_star), "learnt codec", samples)
    fig.suptitle("Figure 2: embedding and binning the target space $R^2$ into $\\Delta_9$")
    return save(fig, stem)


def figure_all_coefficients(stem: str, codec: Codec, title: str, samples: np.ndarray | None = None):
    """Figures 8 and 9: every coefficient psi_w(.)_i, i = 1..9, over the target space."""
    xx, yy, points = _mesh()
    psi = codec.encode(points).numpy().reshape(GRID_POINTS, GRID_POINTS, K)
    fig, axes = plt.subplots(3, 3, figsize=(10, 10))
    mu = codec.mu.numpy()
    for i, ax in enumerate(axes.ravel()):
        ax.contourf(xx, yy, psi[..., i], levels=np.linspace(0, 1, 11), cmap="Reds")
        if samples is not None:
            ax.scatter(samples[::4, 0], samples[::4, 1], s=0.5, color="grey", alpha=0.3)
        ax.scatter(mu[i, 0], mu[i, 1], color="black", s=20)
        ax.set_title(rf"$\psi_w(\cdot)_{{{i + 1}}}$")
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title)
    return save(fig, stem)


def figure2(stem, seed: int = 0, lambda_sigma: float = 0.5, steps: int = 2000):
    """Figure 2: the fixed grid (top) and the learnt codec (bottom)."""
    learnt, samples = learnt_codec(seed, steps)
    return figure_encoders(stem, fixed_grid_codec(lambda_sigma), learnt, samples)


def figure8(stem, seed: int = 0, lambda_sigma: float = 0.5):
    """Figure 8: every coefficient of the fixed-grid encoder."""
    return figure_all_coefficients(
        stem, fixed_grid_codec(lambda_sigma), "Figure 8: every coefficient of the fixed-grid encoder (k = 9, m = 2)"
    )


def figure9(stem, seed: int = 0, lambda_sigma: float = 0.5, steps: int = 2000):
    """Figure 9: every coefficient of the learnt encoder, with the targets it was learnt on."""
    learnt, samples = learnt_codec(seed, steps)
    return figure_all_coefficients(
        stem, learnt, "Figure 9: every coefficient of the learnt encoder (k = 9, m = 2, eq. 7)", samples
    )


FIGURES = {"figure2": figure2, "figure8": figure8, "figure9": figure9}
