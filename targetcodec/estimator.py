"""A scikit-learn style regressor: any method of the paper on one's own (X, y), without Snakemake.

    >>> from targetcodec import TargetCodecRegressor
    >>> model = TargetCodecRegressor(method="end_to_end", k=25).fit(X_train, y_train)
    >>> y_pred = model.predict(X_test)

Features are min-max scaled and targets scaled to [0, 1] on the training data (section 4); a
random ``validation_fraction`` of the training rows drives early stopping. Several seeds train as
one pack and predictions are their mean (an ensemble).
"""

from __future__ import annotations

import numpy as np
import torch

from .codec import initial_codec, pretrain_codec
from .methods import MethodSettings, get_method
from .nn import Architecture
from .pack import RunSpec, SplitData, TrainingConfig, codec_for_method, train_pack


class TargetCodecRegressor:
    def __init__(self, method: str = "end_to_end", k: int = 25, seeds=(0,), lr: float = 1e-3, lambda_kl: float = 0.068,
                 lambda_auto: float = 1.0, lambda_pred: float = 1.0, architecture: Architecture | None = None,
                 training: TrainingConfig | None = None, settings: MethodSettings | None = None,
                 validation_fraction: float = 0.1, device: str = "cpu", random_state: int = 0):
        self.method, self.k, self.seeds, self.lr = method, k, tuple(seeds), lr
        self.lambda_kl, self.lambda_auto, self.lambda_pred = lambda_kl, lambda_auto, lambda_pred
        self.architecture = architecture or Architecture()
        self.training = training or TrainingConfig()
        self.settings = settings or MethodSettings()
        self.validation_fraction, self.device, self.random_state = validation_fraction, device, random_state

    def _scale_x(self, X):
        X = np.asarray(X, dtype=np.float64)
        return (X - self.x_min_) / self.x_range_

    def fit(self, X, y):
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        self.target_ndim_ = y.ndim
        y = y.reshape(len(y), -1)
        if len(X) != len(y):
            raise ValueError(f"X has {len(X)} rows but y has {len(y)}")
        self.x_min_ = X.min(0)
        self.x_range_ = np.where(X.max(0) > X.min(0), X.max(0) - X.min(0), 1.0)
        self.y_min_, self.y_max_ = y.min(0), y.max(0)
        if np.any(self.y_max_ <= self.y_min_):
            raise ValueError("y is constant: nothing to regress")
        ys = (y - self.y_min_) / (self.y_max_ - self.y_min_)
        Xs = self._scale_x(X)
        rng = np.random.default_rng(self.random_state)
        order = rng.permutation(len(X))
        n_val = max(1, int(round(self.validation_fraction * len(X))))
        val, train = order[:n_val], order[n_val:]
        data = SplitData(Xs[train], ys[train], Xs[val], ys[val], Xs[val], ys[val], self.y_min_, self.y_max_)
        method = get_method(self.method)
        pretrained = None
        if method.uses_k and method.needs_pretrained_codec(self.settings):
            pretrained, _ = pretrain_codec(initial_codec(ys[train], self.k, seed=self.random_state, grid=self.settings.grid), ys[train], alpha=self.settings.alpha)
        codec = codec_for_method(method, ys[train], self.k, self.settings, pretrained, seed=self.random_state)
        runs = [RunSpec(seed=s, lr=self.lr, lambda_kl=self.lambda_kl, lambda_auto=self.lambda_auto, lambda_pred=self.lambda_pred)
                for s in self.seeds]
        self.results_, self.predictor_ = train_pack(
            data, method, runs, k=self.k if method.uses_k else None, codec=codec, architecture=self.architecture,
            training=self.training, settings=self.settings, device=self.device, return_predictor=True)
        return self

    def predict(self, X) -> np.ndarray:
        z = self.predictor_.predict(self._scale_x(X)).mean(0).cpu().numpy()
        z = z * (self.y_max_ - self.y_min_) + self.y_min_
        return z[:, 0] if self.target_ndim_ == 1 else z
