"""The fit/score stages around kronfluence: no factor fit when the queries have nothing to score, and scoring
refuses such a skipped fit once a query exists (instead of failing inside kronfluence)."""

import json

import pytest
import torch

from unpoison.execution import Execution
from unpoison.io import save_meta, save_torch
from unpoison.models import build_model, save_checkpoint
from unpoison.stages.influence import SKIPPED, fit_ekfac, score_probes
from unpoison.status import attack_failed, no_query

CPU = Execution("cpu")

SPEC = {"name": "digits_cnn", "num_classes": 10, "in_channels": 1, "options": {"width": 4}}
SETTINGS = {"batch_size": 32}


@pytest.fixture()
def run(tmp_path, digits):
    torch.manual_seed(0)
    save_checkpoint(str(tmp_path / "model.pt"), build_model("digits_cnn", 10, 1, {"width": 4}), SPEC)
    save_torch({"x_train": digits.x_train[:64], "y_train": digits.y_train[:64]}, tmp_path / "poisoned.pt")
    empty = {"x": digits.x_test[:0], "labels": digits.y_test[:0]}
    for name, status in (
        ("failed.pt", attack_failed("only 0 of 1 affected test points are classified as the target")),
        ("none.pt", no_query("gaussian poisoning affects no test point")),
    ):
        save_torch(empty, tmp_path / name)
        save_meta(tmp_path / name, status=status.to_dict())
    save_torch({"x": digits.x_test[:1], "labels": digits.y_test[:1]}, tmp_path / "query.pt")
    return tmp_path


@pytest.mark.parametrize("queries", ["failed.pt", "none.pt"])
def test_nothing_to_score_skips_the_fit_and_scoring_accepts_it(run, queries):
    factors = run / "ekfac"
    fit_ekfac(
        model=str(run / "missing-model.pt"),
        poisoned=str(run / "missing.pt"),
        queries=str(run / queries),
        factors=str(factors),
        settings=SETTINGS,
        seed=0,
        execution=CPU,
    )
    assert [p.name for p in factors.iterdir()] == [SKIPPED]  # neither the model nor the data were even read
    record = json.loads((factors / SKIPPED).read_text())
    assert (
        record["skipped"]
        and record["status"]["state"] in ("attack_failed", "no_query")
        and record["provenance"]["seed"] == 0
    )
    out = run / "base.pt"
    score_probes(
        model=str(run / "model.pt"),
        poisoned=str(run / "poisoned.pt"),
        queries=str(run / queries),
        factors=str(factors),
        n_b=2,
        settings={},
        seed=0,
        execution=CPU,
        base=str(out),
    )
    assert torch.load(out, weights_only=True)["scores"].shape == (0, 1, 64)


def test_a_query_fits_real_factors(run):
    factors = run / "ekfac"
    fit_ekfac(
        model=str(run / "model.pt"),
        poisoned=str(run / "poisoned.pt"),
        queries=str(run / "query.pt"),
        factors=str(factors),
        settings=SETTINGS,
        seed=0,
        execution=CPU,
    )
    assert not (factors / SKIPPED).exists() and any(p.suffix == ".safetensors" for p in factors.rglob("*"))


def test_scoring_a_query_against_a_skipped_fit_names_the_fix(run):
    factors = run / "ekfac"
    fit_ekfac(
        model=str(run / "model.pt"),
        poisoned=str(run / "poisoned.pt"),
        queries=str(run / "failed.pt"),
        factors=str(factors),
        settings=SETTINGS,
        seed=0,
        execution=CPU,
    )
    with pytest.raises(ValueError, match=r"Delete .*ekfac and re-run"):
        score_probes(
            model=str(run / "model.pt"),
            poisoned=str(run / "poisoned.pt"),
            queries=str(run / "query.pt"),
            factors=str(factors),
            n_b=2,
            settings={},
            seed=0,
            execution=CPU,
            base=str(run / "base.pt"),
        )
    assert not (run / "base.pt").exists()
