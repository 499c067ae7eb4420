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
    train_model(
        model, x, y, TrainRecipe(epochs=4, batch_size=32, lr=0.05, milestones=[], crop_padding=0, flip=False), 0, DEV
    )
    factors = tmp_path_factory.mktemp("f") / "ekfac"
    fit_factors(model, TensorDataset01(x, y), factors, FactorSettings(batch_size=64), DEV, seed=0)
    return model, factors, x, y


def test_batched_scoring_equals_per_query_scoring(fitted, digits):
    model, factors, x, y = fitted
    ps = build_probe_set(digits.x_test[:2], digits.y_test[:2], 10, n_b=3, seed=0)
    queries = TensorDataset01(ps.images, ps.labels)
    train = TensorDataset01(x, y)
    batched = score_queries(
        model, factors, queries, train, ScoreSettings(train_batch_size=100, query_batch_size=5), DEV
    )
    assert batched.shape == (len(ps.labels), 300)
    rows = [0, 1, 2, len(ps.labels) - 1]  # both base rows (0, 1), the first and last probe (a pass per row ~4 s)
    single = torch.cat(
        [
            score_queries(
                model,
                factors,
                TensorDataset01(ps.images[i : i + 1], ps.labels[i : i + 1]),
                train,
                ScoreSettings(train_batch_size=100),
                DEV,
            )
            for i in rows
        ]
    )
    torch.testing.assert_close(batched[rows], single, rtol=RTOL, atol=ATOL)


def test_training_point_supports_its_own_label_as_query(fitted):
    model, factors, x, y = fitted
    train = TensorDataset01(x, y)
    idx = torch.arange(10)
    scores = score_queries(
        model, factors, TensorDataset01(x[idx], y[idx]), train, ScoreSettings(train_batch_size=150), DEV
    )
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
        score_queries(
            broken, factors, TensorDataset01(x[:2], y[:2]), TensorDataset01(x[:20], y[:20]), ScoreSettings(), DEV
        )


def test_missing_factors_directory_is_named(fitted, tmp_path):
    model, _, x, y = fitted
    with pytest.raises(FileNotFoundError, match="fit_ekfac"):
        score_queries(
            model, tmp_path / "none", TensorDataset01(x[:1], y[:1]), TensorDataset01(x[:4], y[:4]), ScoreSettings(), DEV
        )


class RecordingDataset(TensorDataset01):
    """Remembers which indices kronfluence reads, in order."""

    def __init__(self, x, y):
        super().__init__(x, y)
        self.seen: list[int] = []

    def __getitem__(self, i):
        self.seen.append(int(i))
        return super().__getitem__(i)


def _factor(path, name):
    from safetensors.torch import load_file

    return load_file(str(path / f"{name}.safetensors"))


@pytest.fixture(scope="module")
def sorted_digits(digits):
    """300 digits sorted by label (like the class-sorted CIFAR-10 subset) and an untrained small CNN."""
    order = torch.argsort(digits.y_train[:300], stable=True)
    torch.manual_seed(0)
    return (
        build_model("digits_cnn", 10, 1, {"width": 4}).eval(),
        digits.x_train[:300][order],
        digits.y_train[:300][order],
    )


def test_capped_lambda_stage_sees_a_random_subset_and_covariance_still_sees_all(sorted_digits, tmp_path):
    model, x, y = sorted_digits
    n, cap = len(y), 60
    data = RecordingDataset(x, y)
    fit_factors(model, data, tmp_path / "capped", FactorSettings(batch_size=64, lambda_max_examples=cap), DEV, seed=0)
    assert data.seen[0] == 0  # the cost estimate reads the first example once
    covariance, lam = data.seen[1 : n + 1], data.seen[n + 1 :]
    assert sorted(covariance) == list(range(n))  # the uncapped stage still sums over every point
    assert len(lam) == len(set(lam)) == cap
    assert len(set(y[lam].tolist())) >= 6  # kronfluence alone: the first 60 sorted points, classes 0-1 only
    full = RecordingDataset(x, y)
    fit_factors(model, full, tmp_path / "full", FactorSettings(batch_size=64), DEV, seed=0)
    # activation covariances do not depend on the sampled Fisher labels: a sum over the same points in
    # another order agrees up to float32 rounding
    a = _factor(tmp_path / "capped", "activation_covariance")
    b = _factor(tmp_path / "full", "activation_covariance")
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6)


def test_uncapped_fit_keeps_the_training_order(sorted_digits, tmp_path):
    model, x, y = sorted_digits
    n = len(y)
    fits = {}
    for label, settings in {
        "none": FactorSettings(batch_size=64),
        "above_n": FactorSettings(batch_size=64, covariance_max_examples=n, lambda_max_examples=5 * n),
    }.items():
        data = RecordingDataset(x, y)
        fit_factors(model, data, tmp_path / label, settings, DEV, seed=0)
        assert data.seen == [0] + list(range(n)) * 2  # cost estimate, covariance then lambda, in the dataset's order
        fits[label] = {f: _factor(tmp_path / label, f) for f in ("gradient_covariance", "lambda_matrix")}
    for f, tensors in fits["none"].items():
        for name, t in tensors.items():
            assert torch.equal(t, fits["above_n"][f][name]), (f, name)
