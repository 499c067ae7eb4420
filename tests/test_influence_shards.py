"""K shard jobs give the single job's factors, scores and Δ-Influence flags (up to float summation order)."""

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from unpoison.data import TensorDataset01
from unpoison.detectors.delta_influence import delta_flags
from unpoison.influence import FactorSettings, ScoreSettings, build_probe_set, fit_factors, score_queries
from unpoison.influence.fisher import fisher_state
from unpoison.influence.score_shards import gather_scores, score_shard
from unpoison.influence.shards import aggregate_covariance, aggregate_lambda, fit_covariance_shard, fit_lambda_shard
from unpoison.models import build_model
from unpoison.training import TrainRecipe, train_model

DEV = torch.device("cpu")
QUIET = lambda line: None
K = 3
# Shards sum the same per-example terms in another order (partition sums, then their sum), in float32.
# Measured on this model: factors ≤ 4e-5 relative (eigenvalues, lambda), scores ≤ 7e-6 relative; a different
# Fisher-label draw moves the gradient covariances by ~1e-1, so 1e-4 also proves the labels are the same.
RTOL = 1e-4


def test_label_draws_depend_only_on_how_many_rows_precede_them():
    probs = torch.softmax(torch.randn(300, 10, generator=torch.Generator().manual_seed(0)), dim=1)
    torch.manual_seed(7)
    torch.empty((), dtype=torch.int64).random_()  # the DataLoader iterator's draw
    whole = torch.multinomial(probs, 1).flatten()
    torch.set_rng_state(fisher_state(7, "covariance", 130, 0, 10))
    resumed = torch.cat([torch.multinomial(probs[130:200], 1), torch.multinomial(probs[200:], 1)]).flatten()
    assert torch.equal(whole[130:], resumed)


@pytest.fixture(scope="module")
def model_and_data(digits):
    x, y = digits.x_train[:240], digits.y_train[:240]
    torch.manual_seed(0)
    model = build_model("digits_cnn", 10, 1, {"width": 4})
    train_model(
        model, x, y, TrainRecipe(epochs=3, batch_size=32, lr=0.05, milestones=[], crop_padding=0, flip=False), 0, DEV
    )
    ps = build_probe_set(digits.x_test[:1], digits.y_test[:1], 10, n_b=6, seed=0, probes=("both",))
    return model.eval(), TensorDataset01(x, y), TensorDataset01(ps.images, ps.labels)


def _sharded_fit(model, train, settings, root, seed):
    for i in range(K):
        fit_covariance_shard(model, train, root / f"cov{i}", settings, DEV, seed, i, K, log=QUIET)
    aggregate_covariance(model, [root / f"cov{i}" for i in range(K)], root / "eigen", DEV, log=QUIET)
    for i in range(K):
        fit_lambda_shard(model, train, root / "eigen", root / f"lam{i}", settings, DEV, seed, i, K, log=QUIET)
    return aggregate_lambda(model, root / "eigen", [root / f"lam{i}" for i in range(K)], root / "ekfac", log=QUIET)


def _close(a, b):
    return float((a - b).abs().max()) <= RTOL * float(b.abs().max())


def test_three_shards_equal_one_job(model_and_data, tmp_path):
    model, train, queries = model_and_data
    settings = FactorSettings(batch_size=32, covariance_max_examples=200, lambda_max_examples=100)  # random subsets
    fit_factors(model, train, tmp_path / "one", settings, DEV, seed=5, log=QUIET)
    report = _sharded_fit(model, train, settings, tmp_path, seed=5)
    assert (report.shards, report.n_covariance, report.n_lambda) == (K, 200, 100)
    files = sorted(p.name for p in (tmp_path / "one").glob("*.safetensors"))
    assert files == sorted(p.name for p in (tmp_path / "ekfac").glob("*.safetensors"))
    for name in files:
        if "eigenvectors" in name:
            continue  # defined up to sign and rotation within (near-)repeated eigenvalues; lambda and scores are not
        one, sharded = load_file(str(tmp_path / "one" / name)), load_file(str(tmp_path / "ekfac" / name))
        for module in one:
            exact = name.startswith("num_")  # example counts are integers
            assert torch.equal(one[module], sharded[module]) if exact else _close(sharded[module], one[module]), (
                name,
                module,
            )
    scoring = ScoreSettings(train_batch_size=50)
    single = score_queries(model, tmp_path / "one", queries, train, scoring, DEV, log=QUIET)
    for i in range(K):
        score_shard(model, tmp_path / "ekfac", queries, train, scoring, DEV, i, K, tmp_path / f"part{i}.pt", log=QUIET)
    gathered = gather_scores([tmp_path / f"part{i}.pt" for i in (2, 0, 1)])
    assert gathered.shape == single.shape and _close(gathered, single)
    flags = lambda s: np.flatnonzero(delta_flags(s[None], 0.0, 1)[0].numpy())
    assert np.array_equal(flags(gathered), flags(single)) and len(flags(single)) > 0


def test_another_fisher_draw_would_not_pass_the_tolerance(model_and_data, tmp_path):
    model, train, _ = model_and_data
    settings = FactorSettings(batch_size=32)
    fit_factors(model, train, tmp_path / "a", settings, DEV, seed=5, log=QUIET)
    fit_factors(model, train, tmp_path / "b", settings, DEV, seed=6, log=QUIET)
    a, b = (load_file(str(tmp_path / d / "gradient_covariance.safetensors")) for d in "ab")
    assert not all(_close(a[m], b[m]) for m in a)


def test_mixed_or_missing_shards_are_refused(model_and_data, tmp_path):
    model, train, queries = model_and_data
    settings = FactorSettings(batch_size=64)
    for seed, i in [(5, 0), (5, 1), (6, 2)]:
        fit_covariance_shard(model, train, tmp_path / f"cov{i}", settings, DEV, seed, i, K, log=QUIET)
    with pytest.raises(ValueError, match="not a covariance shard of the same fit"):
        aggregate_covariance(model, [tmp_path / f"cov{i}" for i in range(K)], tmp_path / "eigen", DEV, log=QUIET)
    with pytest.raises(ValueError, match=r"expected each of 0 … 2 once"):
        aggregate_covariance(model, [tmp_path / "cov0", tmp_path / "cov1"], tmp_path / "eigen", DEV, log=QUIET)
    with pytest.raises(ValueError, match="need ≥ 2 shards"):
        fit_covariance_shard(model, train, tmp_path / "x", settings, DEV, 5, 0, 1, log=QUIET)
    fit_factors(model, train, tmp_path / "f", settings, DEV, log=QUIET)
    score_shard(model, tmp_path / "f", queries, train, ScoreSettings(), DEV, 0, K, tmp_path / "p0.pt", log=QUIET)
    with pytest.raises(ValueError, match=r"expected each of \[0, 1, 2\] once"):
        gather_scores([tmp_path / "p0.pt"])
