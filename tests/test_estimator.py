"""TargetCodecRegressor is a scikit-learn estimator: clone, cross-validation, pipelines and
scikit-learn's own estimator checks (with short training, so that the whole file takes seconds)."""

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator

from targetcodec import Architecture, TargetCodecRegressor, TrainingConfig
from targetcodec.estimator import EXPECTED_FAILED_CHECKS

SMALL = Architecture(width=16, depth=1)


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def data(n=240, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, size=(n, 3))
    return X, 3 * X[:, 0] + np.sin(2 * X[:, 1]) + 10


def quick(**params):
    return TargetCodecRegressor(
        k=5, lr=1e-2, architecture=SMALL, training=TrainingConfig(batch_size=32, max_epochs=15, patience=15), **params
    )


def test_parameters_are_stored_as_given_and_clone_copies_them():
    training = TrainingConfig(max_epochs=3)
    model = TargetCodecRegressor(method="soft_binning", k=7, seeds=[3, 4], training=training)
    params = model.get_params()
    assert params["method"] == "soft_binning" and params["k"] == 7 and params["seeds"] == [3, 4]
    assert params["training"] is training and params["architecture"] is None
    copy = clone(model)
    assert copy is not model and copy.get_params()["training"] == training
    assert not hasattr(copy, "predictor_")
    copy.set_params(k=9)
    assert copy.k == 9 and model.k == 7


def test_fitted_attributes_end_with_an_underscore_and_predict_needs_fit():
    X, y = data()
    model = quick()
    with pytest.raises(NotFittedError):
        model.predict(X)
    model.fit(X, y)
    assert model.n_features_in_ == 3 and len(model.results_) == 1
    assert np.allclose(model.y_min_, y.min()) and np.allclose(model.y_max_, y.max())
    assert model.predict(X).shape == (len(X),)
    with pytest.raises(ValueError, match="3 features"):
        model.predict(X[:, :2])


def test_score_is_r2():
    X, y = data()
    model = quick().fit(X, y)
    pred = model.predict(X)
    r2 = 1 - ((y - pred) ** 2).sum() / ((y - y.mean()) ** 2).sum()
    assert model.score(X, y) == pytest.approx(r2)
    assert r2 > 0.8  # it learnt something: the training-mean prediction scores 0


def test_cross_val_score_and_a_pipeline_with_a_scaler():
    X, y = data(600)
    scores = cross_val_score(make_pipeline(StandardScaler(), quick()), X, y, cv=3)
    assert scores.shape == (3,) and np.all(scores > 0.5)


def test_grid_search_over_a_parameter():
    X, y = data(120)
    search = GridSearchCV(quick(method="least_squares"), {"lr": [1e-4, 1e-2]}, cv=2).fit(X, y)
    assert search.best_params_ == {"lr": 1e-2}  # 15 epochs at 1e-4 barely move the network


def test_a_two_dimensional_target_keeps_its_shape_through_cross_validation():
    X, y = data()
    Y = np.stack([y, -2 * y], axis=1)
    assert cross_val_score(quick(), X, Y, cv=2).shape == (2,)
    assert quick().fit(X, Y).predict(X[:5]).shape == (5, 2)


def test_a_rows_prediction_does_not_depend_on_the_other_rows():
    """Predictions in float64: the same for a row in any order or subset (float32 differed by 1.8e-7)."""
    X, y = data()
    model = quick().fit(X, y)
    full = model.predict(X)
    order = np.random.default_rng(1).permutation(len(X))
    assert np.allclose(model.predict(X[order]), full[order], rtol=1e-12, atol=0)
    assert np.allclose(model.predict(X[3:10]), full[3:10], rtol=1e-12, atol=0)
    assert model.predict(X).dtype == np.float64


def test_check_estimator():
    """scikit-learn's estimator checks, with 30 epochs (enough for check_regressors_train's R^2 > 0.5)."""
    model = TargetCodecRegressor(
        k=5, lr=1e-2, architecture=SMALL, training=TrainingConfig(batch_size=32, max_epochs=30, patience=30)
    )
    results = check_estimator(model, expected_failed_checks=EXPECTED_FAILED_CHECKS, on_fail=None)
    failed = [(r["check_name"], repr(r["exception"])) for r in results if r["status"] == "failed"]
    assert not failed
    assert sum(r["status"] == "passed" for r in results) > 40
