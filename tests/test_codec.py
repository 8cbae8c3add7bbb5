"""The paper's equations against hand computations (section 2.2 to 3.3)."""

import math

import numpy as np
import pytest
import torch

from targetcodec import codec as C
from targetcodec import objectives as O


@pytest.fixture(autouse=True)
def float64():
    """Hand computations in float64, and the default restored for the other test modules."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


def test_eq3_by_hand():
    # y = 0.3, centroids 0, 0.5, 1, sigma = 0.5: logits -(c - y)^2 / (2 * 0.25)
    y = torch.tensor([[0.3]])
    c = torch.tensor([[0.0], [0.5], [1.0]])
    logits = np.array([-(0.3**2), -(0.2**2), -(0.7**2)]) / 0.5
    expected = np.exp(logits) / np.exp(logits).sum()
    np.testing.assert_allclose(C.gaussian_encode(y, c, 0.5)[0].numpy(), expected, rtol=1e-12)


def test_eq3_eq4_eq5_agree():
    gen = torch.Generator().manual_seed(0)
    y = torch.rand(50, 2, generator=gen)
    c = torch.rand(7, 2, generator=gen)
    sigma = 0.3
    p3 = C.gaussian_encode(y, c, sigma)
    p4 = C.gaussian_encode_inner_product(y, c, sigma)
    w_lin, w_bias = C.gaussian_to_softmax_weights(c, sigma)
    p5 = C.softmax_encode(y, w_lin, w_bias)
    torch.testing.assert_close(p3, p4, rtol=0, atol=1e-12)
    torch.testing.assert_close(p3, p5, rtol=0, atol=1e-12)
    torch.testing.assert_close(p3.sum(-1), torch.ones(50))


def test_gaussian_encoder_tends_to_hard_binning():
    y = torch.tensor([[0.12], [0.49], [0.51], [0.97]])
    c = torch.tensor([[0.1], [0.3], [0.5], [0.7], [0.9]])
    hard = C.hard_binning_encode(y, c)
    assert hard.argmax(-1).tolist() == [0, 2, 2, 4]
    gaps = [(C.gaussian_encode(y, c, s) - hard).abs().max().item() for s in (0.1, 0.03, 0.01, 0.001)]
    assert gaps == sorted(gaps, reverse=True)
    assert gaps[-1] < 1e-12


def test_kl_to_one_hot_is_cross_entropy():
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(20, 6, generator=gen)
    labels = torch.randint(6, (20,), generator=gen)
    one_hot = torch.nn.functional.one_hot(labels, 6).double()
    ce = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    torch.testing.assert_close(O.classification_loss(one_hot, logits), ce)
    # for a soft target, KL = cross-entropy - H(p): the constant of eq. (2)
    p = torch.softmax(torch.randn(20, 6, generator=gen), -1)
    cross_entropy = -(p * torch.log_softmax(logits, -1)).sum(-1)
    torch.testing.assert_close(O.classification_loss(p, logits), cross_entropy - C.entropy(p))


def test_decoding_is_c_transpose_pi():
    pi = torch.tensor([[0.2, 0.5, 0.3]])
    c = torch.tensor([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0]])
    torch.testing.assert_close(C.decode(pi, c), torch.tensor([[0.5 + 0.6, 0.2 + 0.6]]))


def test_grid_is_bin_midpoints():
    centroids, spacing = C.grid_centroids(np.array([0.0, 1.0, 0.4]), 4, "midpoints")
    np.testing.assert_allclose(centroids[:, 0], [0.125, 0.375, 0.625, 0.875])
    assert spacing == 0.25


def test_grid_of_endpoints_reaches_both_ends():
    centroids, spacing = C.grid_centroids(np.array([0.0, 1.0, 0.4]), 5, "endpoints")
    np.testing.assert_allclose(centroids[:, 0], [0.0, 0.25, 0.5, 0.75, 1.0])
    assert spacing == 0.25
    with pytest.raises(ValueError, match="unknown grid 'ends'"):
        C.grid_centroids(np.array([0.0, 1.0]), 5, "ends")


@pytest.mark.parametrize("grid, reachable", [("endpoints", True), ("midpoints", False)])
def test_decoder_reaches_0_and_1_only_on_endpoints(grid, reachable):
    """mu^T pi over the simplex spans [min c, max c]: [0, 1] on endpoints, [0.5/k, 1 - 0.5/k] on midpoints."""
    y = np.linspace(0, 1, 101).reshape(-1, 1)
    codec = C.initial_codec(y, 5, grid=grid)
    one_hot = torch.eye(5, dtype=torch.float64)
    reach = codec.decode(one_hot)[:, 0]
    assert (float(reach.min()) == 0.0 and float(reach.max()) == 1.0) == reachable
    if not reachable:
        assert float(reach.min()) == pytest.approx(0.1) and float(reach.max()) == pytest.approx(0.9)
    # the initial soft codec of section 3.3 decodes 0 and 1 closer on endpoints than hard binning on midpoints can
    ends = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
    err = (codec.decode(C.hard_binning_encode(ends, codec.centroids, codec.spacing)) - ends).abs().max().item()
    assert err == pytest.approx(0.0 if reachable else 0.1)


def test_two_dimensional_codec_ignores_the_grid_setting():
    rng = np.random.default_rng(6)
    y = rng.random((300, 2))
    a = C.initial_codec(y, 4, grid="endpoints", seed=1)
    b = C.initial_codec(y, 4, grid="midpoints", seed=1)
    torch.testing.assert_close(a.centroids, b.centroids)


@pytest.mark.parametrize("grid", ["endpoints", "midpoints"])
def test_hard_binning_puts_targets_on_an_edge_in_the_upper_bin(grid):
    """Half-open bins [c_i - d/2, c_i + d/2): a target exactly on an edge falls into the upper bin;
    the top of the range (1.0) into the last bin; argmin (nearest) sends the edge down."""
    k = 5
    centroids, spacing = C.grid_centroids(np.array([0.0, 1.0]), k, grid)
    c = torch.as_tensor(centroids)
    first = centroids[0, 0]
    edges = first + (np.arange(1, k) - 0.5) * spacing  # the k - 1 inner edges
    for dtype in (torch.float64, torch.float32):  # float32: the targets as training sees them
        y = torch.as_tensor(np.concatenate([edges, [0.0, 1.0]]).reshape(-1, 1), dtype=dtype)
        half_open = C.hard_binning_encode(y, c.to(dtype), spacing).argmax(-1).tolist()
        assert half_open == [1, 2, 3, 4, 0, k - 1], (grid, dtype)
    nearest = C.hard_binning_encode(torch.as_tensor(edges.reshape(-1, 1)), c).argmax(-1).tolist()
    assert nearest == [0, 1, 2, 3]
    # just below an edge stays in the lower bin
    below = torch.as_tensor((edges - 1e-3 * spacing).reshape(-1, 1))
    assert C.hard_binning_encode(below, c, spacing).argmax(-1).tolist() == [0, 1, 2, 3]


def test_wine_quality_scores_on_edges_at_k15():
    """Quality scores 3..9 scaled to [0, 1] (i / 6): on the k = 15 midpoint grid 1/3 and 2/3 are edges (5/15, 10/15)."""
    y = torch.tensor([[i / 6] for i in range(7)], dtype=torch.float32)
    centroids, spacing = C.grid_centroids(y.numpy(), 15, "midpoints")
    c = torch.as_tensor(centroids, dtype=torch.float32)
    half_open = C.hard_binning_encode(y, c, spacing).argmax(-1).tolist()
    assert half_open[2] == 5 and half_open[4] == 10 and half_open[6] == 14
    nearest = C.hard_binning_encode(y, c).argmax(-1).tolist()
    assert nearest[2] == 4  # argmin: float rounding decides which side an edge goes (here 1/3 down)


def test_softmax_decoder_initialisations():
    codec = C.initial_codec(np.linspace(0, 1, 50), 5)
    torch.testing.assert_close(C.initial_softmax_decoder(codec, "grid"), codec.mu)
    assert C.initial_softmax_decoder(codec, "zeros").abs().max() == 0
    r = C.initial_softmax_decoder(codec, "random", seed=3)
    assert r.shape == (5, 1) and 0 < r.abs().max() < 0.05
    torch.testing.assert_close(r, C.initial_softmax_decoder(codec, "random", seed=3))
    lin = C.initial_softmax_decoder(codec, "linear", seed=3)
    assert 0.05 < lin.abs().max() <= 1 / math.sqrt(5)  # nn.Linear(5, 1): U(-1/sqrt(5), 1/sqrt(5))
    with pytest.raises(ValueError, match="'uniform'"):
        C.initial_softmax_decoder(codec, "uniform")


def test_grid_codec_autoencoding_error_falls_with_k():
    y = torch.rand(2000, 1, generator=torch.Generator().manual_seed(2))
    errors = [C.initial_codec(y.numpy(), k, lambda_sigma=0.5).autoencoding_error(y) for k in (3, 5, 15, 25, 45)]
    assert all(a > b for a, b in zip(errors, errors[1:])), errors


def test_entropy_by_hand():
    assert C.entropy(torch.tensor([0.5, 0.5])).item() == pytest.approx(math.log(2))
    assert C.entropy(torch.tensor([1.0, 0.0])).item() == 0.0


def test_entropy_penalty_lowers_entropy():
    """A gradient step on eq. (7) with alpha > 0 lowers the codes' entropy more than one on eq. (6)."""
    y = torch.rand(500, 1, generator=torch.Generator().manual_seed(3))
    codec = C.initial_codec(y.numpy(), 5, lambda_sigma=2.0)  # wide Gaussians: high entropy

    def entropy_after_step(alpha):
        w, b, mu = (t.clone().requires_grad_(True) for t in (codec.w_lin, codec.w_bias, codec.mu))
        C.entropy_penalised_autoencoding_loss(y, w, b, mu, alpha).mean().backward()
        with torch.no_grad():
            w -= 0.1 * w.grad
            b -= 0.1 * b.grad
        return C.entropy(C.softmax_encode(y, w, b)).mean().item()

    assert entropy_after_step(1.0) < entropy_after_step(0.0)
    # and the penalty term itself is +alpha H (the paper prints -alpha H; see codec.py)
    psi = codec.encode(y)
    diff = C.entropy_penalised_autoencoding_loss(y, codec.w_lin, codec.w_bias, codec.mu, 0.7) - C.autoencoding_loss(
        y, codec.w_lin, codec.w_bias, codec.mu
    )
    torch.testing.assert_close(diff, 0.7 * C.entropy(psi))


def test_pretraining_lowers_eq7():
    y = np.random.default_rng(4).beta(2, 5, size=(1000, 1))
    codec = C.initial_codec(y, 5)
    trained, report = C.pretrain_codec(codec, y, alpha=1e-6, steps=300, lr=1e-2)
    assert report["final_autoencoding_error"] < report["initial_autoencoding_error"]


def test_two_dimensional_codec():
    rng = np.random.default_rng(5)
    y = np.concatenate([rng.normal(loc, 0.05, size=(200, 2)) for loc in ([0.2, 0.2], [0.8, 0.3], [0.5, 0.9])])
    codec = C.initial_codec(y, 3, lambda_sigma=0.5)
    assert codec.mu.shape == (3, 2) and codec.w_lin.shape == (2, 3)
    yt = torch.as_tensor(y)
    psi = codec.encode(yt)
    assert psi.shape == (600, 3)
    # each cluster is encoded mostly to its own class and decodes close to its centre
    assert len(set(psi.argmax(-1)[::200].tolist())) == 3
    assert codec.autoencoding_error(yt) < 0.05
    hard = C.hard_binning_encode(yt, codec.centroids)
    assert hard.sum(0).tolist() == [200.0, 200.0, 200.0]


def test_huber_is_half_square_for_small_residuals():
    y = torch.tensor([[0.2], [0.9]])
    z = torch.tensor([[0.5], [0.1]])
    torch.testing.assert_close(O.huber_loss(y, z, delta=1.0), 0.5 * O.least_squares_loss(y, z))
    # beyond delta it is linear: delta * (|r| - delta / 2)
    assert O.huber_loss(y, z, delta=0.5)[1].item() == pytest.approx(0.5 * (0.8 - 0.25))


def test_end_to_end_loss_combines_its_terms():
    gen = torch.Generator().manual_seed(6)
    y = torch.rand(10, 1, generator=gen)
    logits = torch.randn(10, 4, generator=gen)
    codec = C.initial_codec(y.numpy(), 4)
    w, b, mu = codec.w_lin, codec.w_bias, codec.mu
    pi = torch.softmax(logits, -1)
    auto = C.autoencoding_loss(y, w, b, mu) + 1e-3 * C.entropy(C.softmax_encode(y, w, b))
    kl = O.classification_loss(C.softmax_encode(y, w, b), logits)
    pred = ((y - pi @ mu) ** 2).sum(-1)
    got = O.end_to_end_loss(y, logits, w, b, mu, 0.3, 0.068, 1.0, alpha=1e-3)
    torch.testing.assert_close(got, 0.3 * auto + 0.068 * kl + pred)
    # lambda_kl = lambda_auto = 0 leaves eq. (9), the softmax least-squares baseline
    torch.testing.assert_close(
        O.end_to_end_loss(y, logits, w, b, mu, 0.0, 0.0, 1.0, alpha=1e-3), O.softmax_least_squares_loss(y, logits, mu)
    )


def test_end_to_end_kl_mean_divides_only_the_kl_term_by_k():
    """kl_reduction="mean" (F.kl_div's default reduction over k classes) scales the KL part of eq. (8)
    by 1/k and leaves the auto-encoding and prediction terms as they are."""
    gen = torch.Generator().manual_seed(7)
    k = 5
    y = torch.rand(8, 1, generator=gen, dtype=torch.float64)
    logits = torch.randn(8, k, generator=gen, dtype=torch.float64)
    codec = C.initial_codec(y.numpy(), k)
    w, b, mu = codec.w_lin, codec.w_bias, codec.mu
    # by hand: KL(psi || pi) = sum_i psi_i (log psi_i - log pi_i), with psi = softmax(y w + b)
    psi = torch.softmax(y @ w + b, -1)
    kl_by_hand = (psi * (psi.log() - torch.log_softmax(logits, -1))).sum(-1)
    others = O.end_to_end_loss(y, logits, w, b, mu, 0.3, 0.0, 1.0, alpha=1e-3)
    total_sum = O.end_to_end_loss(y, logits, w, b, mu, 0.3, 0.068, 1.0, alpha=1e-3, kl_reduction="sum")
    total_mean = O.end_to_end_loss(y, logits, w, b, mu, 0.3, 0.068, 1.0, alpha=1e-3, kl_reduction="mean")
    torch.testing.assert_close(total_sum, others + 0.068 * kl_by_hand)
    torch.testing.assert_close(total_mean, others + 0.068 * kl_by_hand / k)
    # and it is what torch's default reduction of F.kl_div computes, per sample
    per_sample = torch.nn.functional.kl_div(torch.log_softmax(logits, -1), psi, reduction="none").mean(-1)
    torch.testing.assert_close(total_mean - others, 0.068 * per_sample)
    with pytest.raises(ValueError, match="kl_reduction"):
        O.end_to_end_loss(y, logits, w, b, mu, 0.3, 0.068, 1.0, alpha=1e-3, kl_reduction="batchmean")
