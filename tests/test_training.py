"""Every method learns; packs resume after a crash; the scikit-learn style estimator works."""

import numpy as np
import pytest
import torch

from conftest import make_split
from targetcodec import (
    METHODS,
    Architecture,
    MethodSettings,
    RunSpec,
    TargetCodecRegressor,
    TrainingConfig,
    codec_for_method,
    train_pack,
)
from targetcodec.codec import initial_codec, pretrain_codec
from targetcodec.pack import TrainingStopped, stop_after_epoch

TRAINING = TrainingConfig(batch_size=64, max_epochs=60, patience=15, log_every=1000)


@pytest.fixture(scope="module")
def problem():
    data = make_split(n=1000, d=4, noise=0.02, seed=3)
    pretrained, _ = pretrain_codec(initial_codec(data.y_train, 15), data.y_train, steps=300)
    return data, pretrained


@pytest.mark.parametrize("method_name", list(METHODS))
def test_every_method_beats_the_training_mean(problem, method_name):
    data, pretrained = problem
    method = METHODS[method_name]
    k = 15 if method.uses_k else None
    # baseline 4 started as the paper's (codec.softmax_decoder_init: linear) may collapse to the mean, as
    # on Ailerons (docs/results.md); that it can learn is checked from mu on the grid
    settings = MethodSettings(softmax_decoder_init="grid")
    codec = codec_for_method(method, data.y_train, k, settings, pretrained)
    runs = [RunSpec(seed=s, lr=3e-3) for s in (0, 1)]
    results = train_pack(
        data, method, runs, k=k, codec=codec, architecture=Architecture(width=64), training=TRAINING, settings=settings
    )
    mean_mae = np.abs(data.y_test - data.y_train.mean(0)).mean()
    for r in results:
        assert r.metrics["test_mae"] < 0.6 * mean_mae, (method_name, r.metrics["test_mae"], mean_mae)
        assert r.metrics["test_r2"] > 0.5
        # original units are the [0, 1] metrics times the target range
        span = float(data.y_max[0] - data.y_min[0])
        assert r.metrics["test_original_mae"] == pytest.approx(r.metrics["test_mae"] * span, rel=1e-4)


def test_resume_after_a_crash_gives_the_same_runs(tmp_path):
    data = make_split()
    method = METHODS["end_to_end"]
    codec = codec_for_method(method, data.y_train, 5, MethodSettings())
    # the diverging run stops at epoch 4 (patience), so the checkpoint of epoch 6 holds a compacted pack
    runs = [RunSpec(seed=0, lr=3e-3), RunSpec(seed=1, lr=float("nan")), RunSpec(seed=2, lr=1e-2)]
    kwargs = dict(
        k=5,
        codec=codec,
        architecture=Architecture(width=16),
        dtype=torch.float64,
        training=TrainingConfig(batch_size=32, max_epochs=12, patience=4),
    )
    straight = train_pack(data, method, runs, **kwargs)
    assert straight[1].epochs_trained == 4 and straight[0].epochs_trained > 6
    ckpt = tmp_path / "pack.ckpt"
    with stop_after_epoch(7), pytest.raises(TrainingStopped):  # killed after epoch 7: epoch 7's work is lost
        train_pack(data, method, runs, checkpoint=ckpt, checkpoint_every=3, **kwargs)
    assert ckpt.exists()
    lines = []
    resumed = train_pack(data, method, runs, checkpoint=ckpt, checkpoint_every=3, log=lines.append, **kwargs)
    assert any("resumed from checkpoint" in line and "after epoch 6" in line for line in lines)
    assert not ckpt.exists()
    for a, b in zip(straight, resumed, strict=True):
        assert a.epochs_trained == b.epochs_trained
        np.testing.assert_array_equal(a.val_mae_history, b.val_mae_history)  # nan where diverged
        np.testing.assert_array_equal(list(a.metrics.values()), list(b.metrics.values()))


def test_checkpoint_of_another_configuration_is_refused(tmp_path):
    data = make_split()
    method = METHODS["least_squares"]
    kwargs = dict(architecture=Architecture(width=8), training=TrainingConfig(batch_size=32, max_epochs=4))
    ckpt = tmp_path / "pack.ckpt"
    with stop_after_epoch(2), pytest.raises(TrainingStopped):
        train_pack(data, method, [RunSpec(seed=0)], checkpoint=ckpt, checkpoint_every=2, **kwargs)
    with pytest.raises(RuntimeError, match="another configuration"):
        train_pack(data, method, [RunSpec(seed=1)], checkpoint=ckpt, **kwargs)


def test_runs_that_stop_leave_the_pack_without_changing_the_others():
    """A run that stops early is dropped from the computation (the pack is compacted); the runs
    still training give exactly what they give in a pack of their own."""
    data = make_split()
    method = METHODS["soft_binning"]
    codec = codec_for_method(method, data.y_train, 5, MethodSettings())
    kwargs = dict(
        k=5,
        codec=codec,
        architecture=Architecture(width=16, depth=2),
        training=TrainingConfig(batch_size=32, max_epochs=10, patience=3),
    )
    lines = []
    ok, bad, ok2 = train_pack(
        data,
        method,
        [RunSpec(seed=0), RunSpec(seed=1, lr=float("nan")), RunSpec(seed=2, lr=3e-3)],
        log=lines.append,
        **kwargs,
    )
    assert bad.epochs_trained == 3 and ok.epochs_trained > 3
    alone = train_pack(data, method, [RunSpec(seed=0), RunSpec(seed=2, lr=3e-3)], **kwargs)
    for packed, single in zip((ok, ok2), alone, strict=True):
        assert packed.val_mae_history == single.val_mae_history and packed.metrics == single.metrics
    timing = next(line for line in lines if line.startswith("timing:"))
    assert f"{ok.epochs_trained + bad.epochs_trained + ok2.epochs_trained} run-epochs trained of 3 x" in timing


def test_diverged_run_is_reported_not_hidden():
    data = make_split()
    method = METHODS["least_squares"]
    runs = [RunSpec(seed=0, lr=1e-3), RunSpec(seed=1, lr=float("nan"))]
    ok, bad = train_pack(
        data,
        method,
        runs,
        architecture=Architecture(width=8),
        training=TrainingConfig(batch_size=32, max_epochs=5, patience=2),
    )
    assert not ok.diverged and np.isfinite(ok.metrics["test_mae"])
    assert bad.diverged and np.isnan(bad.metrics["test_mae"]) and bad.epochs_trained == 2


def test_estimator_on_a_two_dimensional_target():
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(800, 3))
    y = np.stack([10 * X[:, 0] + 5, np.sin(3 * X[:, 1])], axis=1)
    model = TargetCodecRegressor(
        method="end_to_end",
        k=9,
        lr=3e-3,
        seeds=(0, 1),
        training=TrainingConfig(batch_size=64, max_epochs=40, patience=10),
    ).fit(X[:600], y[:600])
    pred = model.predict(X[600:])
    assert pred.shape == (200, 2)
    baseline = np.abs(y[600:] - y[:600].mean(0)).mean(0)
    assert np.all(np.abs(pred - y[600:]).mean(0) < 0.5 * baseline)
