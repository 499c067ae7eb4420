"""The fit/score stages around kronfluence: no factor fit when the queries have nothing to score, and scoring
refuses such a skipped fit once a query exists (instead of failing inside kronfluence)."""

import json

import pytest
import torch

from unpoison.io import save_torch
from unpoison.models import build_model, save_checkpoint
from unpoison.stages.influence import SKIPPED, fit, score

SPEC = {"name": "digits_cnn", "num_classes": 10, "in_channels": 1, "options": {"width": 4}}
SETTINGS = {"batch_size": 32}


@pytest.fixture()
def run(tmp_path, digits):
    torch.manual_seed(0)
    save_checkpoint(str(tmp_path / "model.pt"), build_model("digits_cnn", 10, 1, {"width": 4}), SPEC)
    save_torch({"x_train": digits.x_train[:64], "y_train": digits.y_train[:64]}, tmp_path / "poisoned.pt")
    empty = {"x": digits.x_test[:0], "labels": digits.y_test[:0]}
    save_torch({**empty, "attack_failed": "only 0 of 1 affected test points are classified as the target"}, tmp_path / "failed.pt")
    save_torch({**empty, "no_query": "gaussian poisoning affects no test point"}, tmp_path / "none.pt")
    save_torch({"x": digits.x_test[:1], "labels": digits.y_test[:1]}, tmp_path / "query.pt")
    return tmp_path


@pytest.mark.parametrize("queries", ["failed.pt", "none.pt"])
def test_nothing_to_score_skips_the_fit_and_scoring_accepts_it(run, queries):
    factors = run / "ekfac"
    fit(str(run / "missing-model.pt"), str(run / "missing.pt"), SETTINGS, 0, "cpu", str(factors), queries=str(run / queries))
    assert [p.name for p in factors.iterdir()] == [SKIPPED]  # neither the model nor the data were even read
    record = json.loads((factors / SKIPPED).read_text())
    assert record["skipped"] and ("attack_failed" in record or "no_query" in record) and record["provenance"]["seed"] == 0
    out = run / "base.pt"
    score(str(run / "model.pt"), str(run / "poisoned.pt"), str(run / queries), str(factors), 2, {}, 0, "cpu", {"base": str(out)})
    assert torch.load(out, weights_only=True)["scores"].shape == (0, 1, 64)


def test_a_query_fits_real_factors(run):
    factors = run / "ekfac"
    fit(str(run / "model.pt"), str(run / "poisoned.pt"), SETTINGS, 0, "cpu", str(factors), queries=str(run / "query.pt"))
    assert not (factors / SKIPPED).exists() and any(p.suffix == ".safetensors" for p in factors.rglob("*"))


def test_scoring_a_query_against_a_skipped_fit_names_the_fix(run):
    factors = run / "ekfac"
    fit(str(run / "model.pt"), str(run / "poisoned.pt"), SETTINGS, 0, "cpu", str(factors), queries=str(run / "failed.pt"))
    with pytest.raises(ValueError, match=r"Delete .*ekfac and re-run"):
        score(str(run / "model.pt"), str(run / "poisoned.pt"), str(run / "query.pt"), str(factors), 2, {}, 0, "cpu",
              {"base": str(run / "base.pt")})
    assert not (run / "base.pt").exists()
