"""A pack of runs trained as one batched model equals each run trained alone with standard PyTorch
(nn.Linear/nn.Conv2d, DataLoader, torch.optim.AdamW or Adam, clip_grad_norm_), in float64."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from conftest import make_split
from targetcodec import (
    METHODS,
    Architecture,
    MethodSettings,
    RunSpec,
    TrainingConfig,
    codec_for_method,
    pretrain_codec,
    train_pack,
    train_pack_with_predictor,
)
from targetcodec.codec import initial_codec
from targetcodec.reference import train_single_run

SPLITS = ("train", "val", "test")
TRAINING = TrainingConfig(batch_size=32, max_epochs=8, patience=3, log_every=100)
# Different learning rates and lambdas per run: a sweep joins the pack.
RUNS = [
    RunSpec(seed=0, lr=3e-3, lambda_kl=0.068, lambda_auto=1.0),
    RunSpec(seed=1, lr=1e-2, lambda_kl=0.5, lambda_auto=0.3),
    RunSpec(seed=7, lr=3e-2, lambda_kl=2.0, lambda_auto=0.0, lambda_pred=0.5),
]


def packed_parameters(net, codec_params, r):
    """Run r's parameters in PyTorch layouts, in the reference's order."""
    out = [w[r] for pair in zip(net.conv_weights, net.conv_biases) for w in pair]
    for w, b in zip(net.weights, net.biases):
        out += [w[r].T, b[r, 0]]
    return out + [v[r] for v in codec_params.values()]


def reference_parameters(net, codec_params):
    return list(net.parameters()) + list(codec_params.values())


def check_pack_matches_single_runs(
    data, method_name, k, arch, settings=MethodSettings(), codec=None, training=TRAINING
):
    method = METHODS[method_name]
    if codec is None and method.uses_k:
        codec = codec_for_method(method, data.y_train, k, settings)
    results, predictor = train_pack_with_predictor(
        data,
        method,
        RUNS,
        k=k,
        codec=codec,
        architecture=arch,
        training=training,
        settings=settings,
        dtype=torch.float64,
    )
    for r, run in enumerate(RUNS):
        alone, net, codec_params = train_single_run(
            data,
            method,
            run,
            k=k,
            codec=codec,
            architecture=arch,
            training=training,
            settings=settings,
            dtype=torch.float64,
        )
        assert results[r].epochs_trained == alone.epochs_trained
        assert results[r].best_epoch == alone.best_epoch
        for name, value in alone.metrics.items():
            assert math.isclose(results[r].metrics[name], value, rel_tol=1e-6, abs_tol=1e-9), (name, r)
        packed = packed_parameters(predictor.net, predictor.codec_params, r)
        single = reference_parameters(net, codec_params)
        assert len(packed) == len(single)
        for p, q in zip(packed, single):
            torch.testing.assert_close(p, q.detach(), rtol=1e-6, atol=1e-6)
    return results


@pytest.mark.parametrize("method_name", list(METHODS))
def test_mlp_pack_equals_single_runs(method_name):
    data = make_split()
    settings = MethodSettings()
    codec = None
    if METHODS[method_name].needs_pretrained_codec(settings):
        codec, _ = pretrain_codec(initial_codec(data.y_train, 5), data.y_train, steps=50)
    results = check_pack_matches_single_runs(
        data, method_name, 5 if METHODS[method_name].uses_k else None, Architecture(width=16, depth=2), settings, codec
    )
    # the runs are really different runs
    assert len({r.metrics["test_mae"] for r in results}) == len(RUNS)


@pytest.mark.parametrize("modes", [("l2", "l2"), ("l2", "decoupled"), ("decoupled", "l2")])
def test_weight_decay_modes_pack_equals_torch_adam_or_adamw(modes):
    """Coupled L2 decay equals torch.optim.Adam, decoupled equals AdamW, per network and codec; a
    large decay so that the modes matter."""
    training = dataclasses.replace(
        TRAINING,
        weight_decay=0.01,
        codec_weight_decay=0.01,
        weight_decay_mode=modes[0],
        codec_weight_decay_mode=modes[1],
    )
    check_pack_matches_single_runs(make_split(), "end_to_end", 5, Architecture(width=16, depth=1), training=training)


@pytest.mark.parametrize("init", ["zeros", "random", "linear"])
def test_softmax_decoder_initialisations_pack_equals_single_runs(init):
    settings = MethodSettings(softmax_decoder_init=init, grid="midpoints")
    check_pack_matches_single_runs(make_split(), "softmax_least_squares", 5, Architecture(width=16, depth=1), settings)


@pytest.mark.parametrize("method_name", ["least_squares", "end_to_end"])
def test_cnn_pack_equals_single_runs(method_name):
    data = make_split(n=120, images=True)
    arch = Architecture(kind="cnn", conv_channels=(4, 6, 8), fc_width=12, fc_depth=2)
    check_pack_matches_single_runs(data, method_name, 5 if METHODS[method_name].uses_k else None, arch)


@pytest.mark.parametrize("method_name", ["hard_binning", "end_to_end", "softmax_least_squares"])
def test_two_dimensional_targets_pack_equals_single_runs(method_name):
    check_pack_matches_single_runs(make_split(m=2), method_name, 4, Architecture(width=16, depth=1))


def test_run_does_not_depend_on_its_pack():
    """Seed 7 gives the same numbers alone, first, or last in a pack (a user may change pack_size)."""
    data = make_split()
    method = METHODS["soft_binning"]
    codec = codec_for_method(method, data.y_train, 5, MethodSettings())
    kwargs = dict(k=5, codec=codec, architecture=Architecture(width=16), training=TRAINING, dtype=torch.float64)
    alone = train_pack(data, method, [RUNS[2]], **kwargs)[0]
    last = train_pack(data, method, RUNS, **kwargs)[2]
    first = train_pack(data, method, [RUNS[2], RUNS[0]], **kwargs)[0]
    assert alone.metrics == pytest.approx(last.metrics, rel=1e-9) == first.metrics


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_compiled_step_equals_the_eager_step(kind):
    """training.compile (torch.compile of the forward pass and loss; dropout uniforms drawn outside
    it) gives the same runs within float round-off, through compaction (a run stops early and the
    pack shrinks, so the compiled graph sees a new run count)."""
    data = make_split()
    if kind == "cnn":  # images laid out as prepare.py leaves them: channels last in memory
        data = make_split(n=120, images=True)
        channels_last = lambda X: np.ascontiguousarray(X.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)  # noqa: E731
        data = dataclasses.replace(data, **{f"X_{s}": channels_last(getattr(data, f"X_{s}")) for s in SPLITS})
    arch = (
        Architecture(kind="cnn", conv_channels=(4, 6, 8), fc_width=12, fc_depth=2)
        if kind == "cnn"
        else Architecture(width=16, depth=2)
    )
    method = METHODS["end_to_end"]
    codec = codec_for_method(method, data.y_train, 5, MethodSettings())
    runs = [RunSpec(seed=0, lr=3e-3), RunSpec(seed=1, lr=float("nan")), RunSpec(seed=2, lr=1e-2)]
    results = {}
    for compiled in (False, True):
        training = TrainingConfig(batch_size=32, max_epochs=5, patience=2, log_every=100, compile=compiled)
        results[compiled] = train_pack(
            data,
            method,
            runs,
            k=5,
            codec=codec,
            architecture=arch,
            training=training,
            dtype=torch.float64,
        )
    assert results[True][1].diverged and results[True][1].epochs_trained == 2
    for eager, compiled in zip(results[False], results[True], strict=True):
        assert eager.epochs_trained == compiled.epochs_trained and eager.best_epoch == compiled.best_epoch
        for name, value in eager.metrics.items():
            assert math.isclose(compiled.metrics[name], value, rel_tol=1e-6, abs_tol=1e-9) or (
                math.isnan(value) and eager.diverged
            )
