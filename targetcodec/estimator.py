"""A scikit-learn regressor: any method of the paper on one's own (X, y), without Snakemake.

    >>> from targetcodec import TargetCodecRegressor
    >>> model = TargetCodecRegressor(method="end_to_end", k=25).fit(X_train, y_train)
    >>> y_pred = model.predict(X_test)

Features are min-max scaled and targets scaled to [0, 1] on the training data (section 4); a
random ``validation_fraction`` of the training rows drives early stopping. Several seeds train as
one pack and predictions are their mean (an ensemble).

It is a scikit-learn estimator (``BaseEstimator``, ``RegressorMixin``): ``clone``, ``Pipeline``,
``GridSearchCV`` and ``cross_val_score`` work, ``score`` is R^2, y may be [n] or [n, m]. Training
settings are parameters too, e.g. ``training=TrainingConfig(max_epochs=20)``. The tests run
scikit-learn's ``check_estimator`` on it (``EXPECTED_FAILED_CHECKS`` would list, with the reason,
any check it does not pass; none today).

Parameters are checked at ``fit`` as scikit-learn checks its own (``_parameter_constraints``): a
negative learning rate, say, is refused there, naming the parameter. A seed whose run diverged (no
finite validation MAE in any epoch) is left out of the predictions with a ``ConvergenceWarning``;
if every run diverged, ``fit`` raises ``TrainingDiverged``.
"""

from __future__ import annotations

import warnings
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted, validate_data

from .codec import initial_codec, pretrain_codec
from .methods import METHODS, MethodSettings, get_method
from .nn import Architecture
from .pack import RunSpec, SplitData, TrainingConfig, codec_for_method, train_pack_with_predictor

# scikit-learn's estimator checks that this regressor does not pass, and why (for check_estimator's
# expected_failed_checks; tests/test_estimator.py runs the others). None: predictions are computed in
# float64 (see ``predict``), so a row's prediction does not depend on the other rows of X, which the
# subset- and sample-order-invariance checks ask to within 1e-7.
EXPECTED_FAILED_CHECKS: dict[str, str] = {}


class TrainingDiverged(RuntimeError):
    """Every run of a fit diverged: no epoch gave any of them a finite validation MAE."""


class TargetCodecRegressor(RegressorMixin, BaseEstimator):
    """Regression through a target codec (or a plain regression baseline), trained as one pack of seeds.

    Parameters are stored as given and read at ``fit``: ``method`` (a name of ``targetcodec.METHODS``),
    ``k`` (classes, for methods with a codec), ``seeds`` (one network each; predictions are their
    mean), ``lr``, ``lambda_kl``, ``lambda_auto``, ``lambda_pred`` (eq. 8), ``architecture``,
    ``training`` and ``settings`` (``Architecture``, ``TrainingConfig``, ``MethodSettings``; None is
    their defaults, the paper's values), ``validation_fraction`` (rows held out for early stopping),
    ``device`` and ``random_state`` (validation rows, codec initialisation).

    Fitted attributes: ``n_features_in_``, ``x_min_``, ``x_range_``, ``y_min_``, ``y_max_``
    (the scaling), ``results_`` (one ``RunResult`` per seed), ``predictor_`` (the trained pack),
    ``diverged_seeds_`` and ``ensemble_`` (the runs whose mean ``predict`` gives).
    """

    def __init__(
        self,
        method: str = "end_to_end",
        k: int = 25,
        seeds=(0,),
        lr: float = 1e-3,
        lambda_kl: float = 0.068,
        lambda_auto: float = 1.0,
        lambda_pred: float = 1.0,
        architecture: Architecture | None = None,
        training: TrainingConfig | None = None,
        settings: MethodSettings | None = None,
        validation_fraction: float = 0.1,
        device: str = "cpu",
        random_state: int = 0,
    ):
        self.method = method
        self.k = k
        self.seeds = seeds
        self.lr = lr
        self.lambda_kl = lambda_kl
        self.lambda_auto = lambda_auto
        self.lambda_pred = lambda_pred
        self.architecture = architecture
        self.training = training
        self.settings = settings
        self.validation_fraction = validation_fraction
        self.device = device
        self.random_state = random_state

    # Checked at fit (scikit-learn's _validate_params). The bounds are what the training can use, not
    # what it is good at: features and targets are scaled to [0, 1] and Adam moves each weight by about
    # lr per step, so a learning rate above 1 only throws the weights around; the lambdas weigh loss
    # terms and must be finite and non-negative (a negative one rewards the term it should penalise).
    _parameter_constraints: dict = {
        "method": [str],  # a name of METHODS, checked at fit with the known names (methods can be registered)
        "k": [Interval(Integral, 2, None, closed="left")],
        "seeds": ["array-like"],
        "lr": [Interval(Real, 0, 1, closed="right")],
        "lambda_kl": [Interval(Real, 0, None, closed="left")],
        "lambda_auto": [Interval(Real, 0, None, closed="left")],
        "lambda_pred": [Interval(Real, 0, None, closed="left")],
        "architecture": [Architecture, None],
        "training": [TrainingConfig, None],
        "settings": [MethodSettings, None],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "device": [str, torch.device],
        "random_state": [Interval(Integral, 0, None, closed="left")],
    }

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.single_output = True
        tags.target_tags.multi_output = True
        tags.input_tags.allow_nan = False
        return tags

    def _architecture(self) -> Architecture:
        return self.architecture if self.architecture is not None else Architecture()

    def _validate_X(self, X, reset: bool):
        return validate_data(self, X, reset=reset, dtype=np.float64, allow_nd=self._architecture().kind == "cnn")

    def _scale_x(self, X) -> np.ndarray:
        return (X - self.x_min_) / self.x_range_

    def _checked_seeds(self) -> list[int]:
        seeds = list(np.asarray(self.seeds, dtype=object).reshape(-1))
        if not seeds or not all(isinstance(s, Integral) and not isinstance(s, bool) and s >= 0 for s in seeds):
            raise ValueError(
                f"The 'seeds' parameter of {type(self).__name__} must be non-empty non-negative integers, got {self.seeds!r}"
            )
        return [int(s) for s in seeds]

    def _checked_device(self) -> torch.device:
        try:
            return torch.device(self.device)
        except RuntimeError as e:
            raise ValueError(f"The 'device' parameter of {type(self).__name__} is not a torch device: {e}") from None

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Train one network per seed on (X, y); y is [n] or [n, m]."""
        seeds, device = self._checked_seeds(), self._checked_device()
        if self.method not in METHODS:
            get_method(self.method)  # raises, naming the known methods
        X, y = validate_data(
            self, X, y, dtype=np.float64, multi_output=True, y_numeric=True, allow_nd=self._architecture().kind == "cnn"
        )
        self.target_ndim_ = y.ndim
        y = y.reshape(len(y), -1)
        if len(X) < 2:
            raise ValueError(
                f"TargetCodecRegressor needs at least 2 samples (training and validation rows), "
                f"got n_samples = {len(X)}"
            )
        settings = self.settings if self.settings is not None else MethodSettings()
        training = self.training if self.training is not None else TrainingConfig()
        method = get_method(self.method)
        self.x_min_ = X.min(0)
        self.x_range_ = np.where(X.max(0) > X.min(0), X.max(0) - X.min(0), 1.0)
        self.y_min_, self.y_max_ = y.min(0), y.max(0)
        if np.any(self.y_max_ <= self.y_min_):
            raise ValueError("y is constant: nothing to regress")
        ys = (y - self.y_min_) / (self.y_max_ - self.y_min_)
        Xs = self._scale_x(X)
        rng = np.random.default_rng(self.random_state)
        order = rng.permutation(len(X))
        n_val = min(len(X) - 1, max(1, int(round(self.validation_fraction * len(X)))))
        val, train = order[:n_val], order[n_val:]
        data = SplitData(Xs[train], ys[train], Xs[val], ys[val], Xs[val], ys[val], self.y_min_, self.y_max_)
        pretrained = None
        if method.uses_k and method.needs_pretrained_codec(settings):
            pretrained, _ = pretrain_codec(
                initial_codec(ys[train], self.k, seed=self.random_state, grid=settings.grid),
                ys[train],
                alpha=settings.alpha,
            )
        codec = codec_for_method(method, ys[train], self.k, settings, pretrained, seed=self.random_state)
        runs = [
            RunSpec(
                seed=s, lr=self.lr, lambda_kl=self.lambda_kl, lambda_auto=self.lambda_auto, lambda_pred=self.lambda_pred
            )
            for s in seeds
        ]
        self.results_, predictor = train_pack_with_predictor(
            data,
            method,
            runs,
            k=self.k if method.uses_k else None,
            codec=codec,
            architecture=self._architecture(),
            training=training,
            settings=settings,
            device=device,
        )
        self.diverged_seeds_ = [r.spec.seed for r in self.results_ if r.diverged]
        # a diverged run keeps its initial weights: its predictions are finite but meaningless
        self.ensemble_ = [i for i, r in enumerate(self.results_) if not r.diverged]
        if not self.ensemble_:
            raise TrainingDiverged(
                f"every run diverged (seeds {self.diverged_seeds_}): no epoch gave a finite validation MAE, with "
                f"method={self.method!r}, lr={self.lr:g}, lambda_kl={self.lambda_kl:g}, lambda_auto={self.lambda_auto:g}, "
                f"lambda_pred={self.lambda_pred:g}; a lower learning rate or smaller lambdas usually train"
            )
        if self.diverged_seeds_:
            warnings.warn(
                f"{len(self.diverged_seeds_)} of {len(self.results_)} runs diverged (seeds {self.diverged_seeds_}: "
                f"no finite validation MAE); predictions are the mean of the other {len(self.ensemble_)}",
                ConvergenceWarning,
                stacklevel=2,
            )
        # float32 products over another number or order of rows round differently (one unit in the last
        # place, 1.8e-7 measured); in float64 a row's prediction is the same whatever X holds
        self.predictor_ = predictor.to(torch.float64)
        return self

    def predict(self, X) -> np.ndarray:
        """The mean prediction of the seeds (those that did not diverge), in the units of y ([n] or
        [n, m] as y was)."""
        check_is_fitted(self, "predictor_")
        X = self._validate_X(X, reset=False)
        z = self.predictor_.predict(self._scale_x(X))[self.ensemble_].mean(0).cpu().numpy().astype(np.float64)
        z = z * (self.y_max_ - self.y_min_) + self.y_min_
        return z[:, 0] if self.target_ndim_ == 1 else z
