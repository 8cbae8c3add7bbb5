"""TargetCodecRegressor is a scikit-learn estimator: clone, cross-validation, pipelines and
scikit-learn's own estimator checks (with short training, so that the whole file takes seconds)."""

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator

import targetcodec.estimator
from targetcodec import Architecture, TargetCodecRegressor, TrainingConfig
from targetcodec.estimator import EXPECTED_FAILED_CHECKS, TrainingDiverged

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


@pytest.mark.parametrize(
    "params, words",
    [
        ({"lr": -1e-2}, "The 'lr' parameter of TargetCodecRegressor must be a float in the range (0.0, 1.0]"),
        ({"lr": 1e3}, "'lr' parameter"),
        ({"lr": float("nan")}, "'lr' parameter"),
        ({"lambda_kl": -0.1}, "'lambda_kl' parameter"),
        ({"lambda_auto": float("inf")}, "'lambda_auto' parameter"),
        ({"lambda_pred": "1"}, "'lambda_pred' parameter"),
        ({"k": 1}, "'k' parameter"),
        ({"validation_fraction": 1.0}, "'validation_fraction' parameter"),
        ({"random_state": -1}, "'random_state' parameter"),
        ({"training": {"max_epochs": 3}}, "'training' parameter"),
        ({"architecture": "mlp"}, "'architecture' parameter"),
        ({"method": 3}, "'method' parameter"),
        ({"method": "gradient_boosting"}, "unknown method 'gradient_boosting'; known: least_squares"),
        ({"seeds": []}, "'seeds' parameter of TargetCodecRegressor must be non-empty non-negative integers"),
        ({"seeds": [0, -1]}, "'seeds' parameter"),
        ({"seeds": [0.5]}, "'seeds' parameter"),
        ({"device": "tpu"}, "'device' parameter of TargetCodecRegressor is not a torch device"),
    ],
)
def test_a_bad_parameter_is_refused_at_fit_naming_it(params, words, monkeypatch):
    """Checked before any training (scikit-learn's parameter validation): a negative learning rate
    used to fit silently to an R^2 of -26, an absurd one to -8.6."""
    monkeypatch.setattr(targetcodec.estimator, "train_pack_with_predictor", lambda *a, **k: pytest.fail("trained"))
    X, y = data(40)
    model = quick().set_params(**params)
    with pytest.raises(ValueError) as error:
        model.fit(X, y)
    assert words in str(error.value)


def test_a_fit_in_which_every_run_diverged_fails_naming_the_cause():
    """lambda_kl = 1e39 is a finite float, but infinite in the float32 the network trains in: every
    run's loss is infinite from the first step. The fit used to return and predict finite numbers
    (each run's initial network); now it raises, with the seeds and the settings."""
    X, y = data()
    model = quick(method="end_to_end", seeds=[0, 1], lambda_kl=1e39)
    with pytest.raises(TrainingDiverged, match=r"every run diverged \(seeds \[0, 1\]\).*lambda_kl=1e\+39"):
        model.fit(X, y)
    assert not hasattr(model, "predictor_")


def test_a_diverged_seed_is_left_out_of_the_predictions_with_a_warning(monkeypatch):
    """A run that diverged keeps its initial weights: its predictions are left out of the mean."""
    real = targetcodec.estimator.train_pack_with_predictor

    def second_run_diverges(*args, **kwargs):
        results, predictor = real(*args, **kwargs)
        results[1].best_epoch = 0  # what a run with no finite validation MAE in any epoch records
        return results, predictor

    X, y = data()
    monkeypatch.setattr(targetcodec.estimator, "train_pack_with_predictor", second_run_diverges)
    with pytest.warns(ConvergenceWarning, match=r"1 of 2 runs diverged \(seeds \[1\]"):
        model = quick(seeds=[0, 1]).fit(X, y)
    assert model.diverged_seeds_ == [1] and model.ensemble_ == [0]
    alone = model.predictor_.predict(model._scale_x(X))[0, :, 0].numpy() * (y.max() - y.min()) + y.min()
    assert np.allclose(model.predict(X), alone)


def test_check_estimator():
    """scikit-learn's estimator checks, with 30 epochs (enough for check_regressors_train's R^2 > 0.5)."""
    model = TargetCodecRegressor(
        k=5, lr=1e-2, architecture=SMALL, training=TrainingConfig(batch_size=32, max_epochs=30, patience=30)
    )
    results = check_estimator(model, expected_failed_checks=EXPECTED_FAILED_CHECKS, on_fail=None)
    failed = [(r["check_name"], repr(r["exception"])) for r in results if r["status"] == "failed"]
    assert not failed
    assert sum(r["status"] == "passed" for r in results) > 40
