"""EK-FAC scoring: one batched pass equals per-query passes; sign convention; NaN guard."""

import pytest
import torch

from unpoison.data import TensorDataset01
from unpoison.influence import FactorSettings, ScoreSettings, build_probe_set, fit_factors, score_queries
from unpoison.models import build_model
from unpoison.training import TrainRecipe, train_model

DEV = torch.device("cpu")
# Batched and per-query scores differ only by float32 summation order; measured max relative
# difference ~1e-6 on this model, so 1e-4 relative (plus 1e-3 absolute for near-zero scores) is safe.
RTOL, ATOL = 1e-4, 1e-3


@pytest.fixture(scope="module")
def fitted(tmp_path_factory, digits):
    x, y = digits.x_train[:300], digits.y_train[:300]
    torch.manual_seed(0)
    model = build_model("digits_cnn", 10, 1, {"width": 4})
    train_model(model, x, y, TrainRecipe(epochs=4, batch_size=32, lr=0.05, milestones=[], crop_padding=0, flip=False), 0, DEV)
    factors = tmp_path_factory.mktemp("f") / "ekfac"
    fit_factors(model, TensorDataset01(x, y), factors, FactorSettings(batch_size=64), DEV, seed=0)
    return model, factors, x, y


def test_batched_scoring_equals_per_query_scoring(fitted, digits):
    model, factors, x, y = fitted
    ps = build_probe_set(digits.x_test[:2], digits.y_test[:2], 10, n_b=3, seed=0)
    queries = TensorDataset01(ps.images, ps.labels)
    train = TensorDataset01(x, y)
    batched = score_queries(model, factors, queries, train, ScoreSettings(train_batch_size=100, query_batch_size=5), DEV)
    assert batched.shape == (len(ps.labels), 300)
    single = torch.cat(
        [
            score_queries(model, factors, TensorDataset01(ps.images[i : i + 1], ps.labels[i : i + 1]), train, ScoreSettings(train_batch_size=100), DEV)
            for i in range(len(ps.labels))
        ]
    )
    torch.testing.assert_close(batched, single, rtol=RTOL, atol=ATOL)


def test_training_point_supports_its_own_label_as_query(fitted):
    model, factors, x, y = fitted
    train = TensorDataset01(x, y)
    idx = torch.arange(10)
    scores = score_queries(model, factors, TensorDataset01(x[idx], y[idx]), train, ScoreSettings(train_batch_size=150), DEV)
    self_scores = scores[idx, idx]
    # positive sign = supports the query's label; a point supports itself more than a typical point does
    assert (self_scores > 0).all()
    assert (self_scores > scores.median(dim=1).values).all()


def test_nan_scores_stop_with_a_message(fitted, digits):
    model, factors, x, y = fitted
    broken = build_model("digits_cnn", 10, 1, {"width": 4})
    broken.load_state_dict(model.state_dict())
    with torch.no_grad():
        broken.head.weight.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="NaN/inf"):
        score_queries(broken, factors, TensorDataset01(x[:2], y[:2]), TensorDataset01(x[:20], y[:20]), ScoreSettings(), DEV)


def test_missing_factors_directory_is_named(fitted, tmp_path):
    model, _, x, y = fitted
    with pytest.raises(FileNotFoundError, match="fit_ekfac"):
        score_queries(model, tmp_path / "none", TensorDataset01(x[:1], y[:1]), TensorDataset01(x[:4], y[:4]), ScoreSettings(), DEV)
