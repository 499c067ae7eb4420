"""The robust EK-FAC fit: bit-identical to kronfluence where eigh works, surviving a covariance where it fails,
and failing inside a stage with an error that names the stage, the module and what to try."""

import json

import pytest
import torch
from safetensors.torch import load_file
from torch import nn
from torch.utils.data import TensorDataset

from unpoison.data import TensorDataset01
from unpoison.influence import FactorSettings, InfluenceStageError, ScoreSettings, fit_factors, score_queries
from unpoison.influence.eigen import robust_eigh
from unpoison.influence.factors import FACTORS_NAME, REPORT, make_analyzer, plan_fit
from unpoison.models import build_model

DEV = torch.device("cpu")
QUIET = lambda line: None


def _tensors(directory):
    return {p.name: load_file(str(p)) for p in sorted(directory.glob("*.safetensors"))}


def _plain_kronfluence(model, train, settings, seed, root):
    """kronfluence's own fit_all_factors with the same dataset order and Fisher seed as fit_factors."""
    plan = plan_fit(train, settings, seed)
    analyzer = make_analyzer(model, root, DEV, settings)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(plan.fisher_seed)
        analyzer.fit_all_factors(
            FACTORS_NAME,
            plan.dataset,
            per_device_batch_size=settings.batch_size,
            factor_args=settings.arguments(),
            overwrite_output_dir=True,
        )
    return analyzer.factors_output_dir(FACTORS_NAME)


@pytest.mark.parametrize("cap", [None, 50])
def test_fit_is_bit_identical_to_plain_kronfluence_where_eigh_works(digits, tmp_path, cap):
    torch.manual_seed(0)
    model = build_model("digits_cnn", 10, 1, {"width": 4}).eval()
    train = TensorDataset01(digits.x_train[:160], digits.y_train[:160])
    settings = FactorSettings(batch_size=64, lambda_max_examples=cap)
    report = fit_factors(model, train, tmp_path / "ours", settings, DEV, seed=3, log=QUIET)
    plain = _tensors(_plain_kronfluence(model, train, settings, 3, tmp_path / "plain"))
    ours = _tensors(tmp_path / "ours")
    assert (
        sorted(ours) == sorted(plain) and len(ours) == 10
    )  # 2 covariances + 2 counts, 4 eigendecomposition, lambda + count
    for name, tensors in plain.items():
        for module, t in tensors.items():
            assert torch.equal(ours[name][module], t), (name, module)
    assert report.helped() == [] and report.n_lambda == (cap or 160)
    saved = json.loads((tmp_path / "ours" / REPORT).read_text())
    assert saved["eigendecomposition"]["helped"] == [] and set(saved["seconds"]) >= {"covariance", "lambda"}


def test_robust_eigh_retries_a_failing_matrix_with_jitter_and_records_it(monkeypatch):
    g = torch.Generator().manual_seed(0)
    a = torch.randn(6, 6, generator=g, dtype=torch.float64)
    matrix = a @ a.T
    plain = torch.linalg.eigh
    calls = []

    def fail_first(m):
        calls.append(m)
        if len(calls) == 1:
            raise torch.linalg.LinAlgError("linalg.eigh: The algorithm failed to converge")
        return plain(m)

    monkeypatch.setattr(torch.linalg, "eigh", fail_first)
    values, vectors, record = robust_eigh(matrix, "conv")
    jitter = float(matrix.diagonal().mean()) * 1e-6
    assert record.attempts == 2 and record.jitter == pytest.approx(jitter) and record.solver == "eigh" and record.helped
    torch.testing.assert_close(vectors @ torch.diag(values) @ vectors.T, matrix)  # the jitter is taken out again


def test_robust_eigh_falls_back_to_scipy_when_jitter_does_not_help(monkeypatch):
    matrix = torch.diag(torch.tensor([3.0, 1.0, 1.0, 0.0], dtype=torch.float64))

    def always_fail(m):
        raise torch.linalg.LinAlgError("failed to converge")

    monkeypatch.setattr(torch.linalg, "eigh", always_fail)
    values, vectors, record = robust_eigh(matrix, "conv")
    assert record.solver == "scipy-evr" and record.attempts == 1 + 5 + 1  # eigh, jitter 1e-6 … 1e-2, scipy
    torch.testing.assert_close(values, torch.tensor([0.0, 1.0, 1.0, 3.0], dtype=torch.float64))
    torch.testing.assert_close(vectors @ torch.diag(values) @ vectors.T, matrix)


def test_a_nan_covariance_names_the_stage_and_module(monkeypatch):
    matrix = torch.full((3, 3), float("nan"), dtype=torch.float64)
    with pytest.raises(
        InfluenceStageError, match=r"eigendecomposition stage failed in module 'layer4\.conv'.*NaN.*Try:"
    ):
        robust_eigh(matrix, "layer4.conv")


def padded_conv_case():
    """A conv on 1×1 maps with padding: 24 of its 25 kernel positions see only padding, so its 800-wide
    activation covariance has 768 zero rows and columns (the ResNet-18 layer4 case of issue 21). On these
    512 inputs, fitted in one batch, LAPACK's eigh (MKL in torch 2.14.1's CPU build) fails to converge on it,
    with 1 or 2 threads; found by a seeded search over such inputs."""
    g = torch.Generator().manual_seed(409258)
    x = torch.relu(torch.randn(512, 32, generator=g) + torch.randn(32, generator=g))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(32, 4, 5, padding=2, bias=False), nn.Flatten(), nn.ReLU(), nn.Linear(4, 3))
    return model.eval(), TensorDataset(x[:, :, None, None], torch.arange(512) % 3)


def test_plain_kronfluence_fails_on_a_conv_over_padding(tmp_path):
    model, train = padded_conv_case()
    with pytest.raises(torch.linalg.LinAlgError, match="failed to converge"):
        _plain_kronfluence(model, train, FactorSettings(batch_size=512), 0, tmp_path)


def test_the_fit_survives_it_and_scores_are_finite(tmp_path):
    model, train = padded_conv_case()
    lines = []
    report = fit_factors(model, train, tmp_path / "f", FactorSettings(batch_size=512), DEV, log=lines.append)
    jitter = report.eigen["0"]["activation"].jitter
    expected = (
        f"0 activation covariance (800×800): eigh failed; succeeded with diagonal jitter {jitter:.3g} after 2 attempts"
    )
    assert report.helped() == [expected]
    assert any(line.startswith("eigendecomposition: 0 activation covariance (800×800) needed help") for line in lines)
    saved = json.loads((tmp_path / "f" / REPORT).read_text())["eigendecomposition"]
    assert saved["helped"] == ["0/activation"] and saved["modules"]["0"]["activation"]["attempts"] == 2
    assert saved["modules"]["3"]["activation"] == {
        "size": 5,
        "attempts": 1,
        "jitter": 0.0,
        "solver": "eigh",
        "seconds": saved["modules"]["3"]["activation"]["seconds"],
        "helped": False,
    }
    scores = score_queries(
        model, tmp_path / "f", torch.utils.data.Subset(train, range(4)), train, ScoreSettings(), DEV, log=QUIET
    )
    assert scores.shape == (4, 512) and torch.isfinite(scores).all() and (scores.diagonal() > 0).all()


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))

    def forward(self, x):
        return self.net(x)


@pytest.mark.parametrize(
    "stage, method, hint",
    [
        ("covariance", "fit_covariance_matrices", "factors.batch_size"),
        ("lambda", "fit_lambda_matrices", "lambda_max_examples"),
        ("scores", "compute_pairwise_scores", "scores.train_batch_size"),
    ],
)
def test_a_failure_inside_a_stage_names_the_stage_and_what_to_try(tmp_path, monkeypatch, stage, method, hint):
    from kronfluence.analyzer import Analyzer

    train = TensorDataset(torch.randn(32, 1, 8, 8), torch.arange(32) % 3)
    if stage == "scores":
        fit_factors(Tiny(), train, tmp_path / "f", FactorSettings(batch_size=16), DEV, log=QUIET)

    def fail(*args, **kwargs):
        raise RuntimeError("out of memory on purpose")

    monkeypatch.setattr(Analyzer, method, fail)
    with pytest.raises(
        InfluenceStageError,
        match=rf"EK-FAC {stage} stage failed: RuntimeError: out of memory on purpose\. "
        rf"Try: .*{hint}",
    ) as err:
        if stage == "scores":
            score_queries(Tiny(), tmp_path / "f", train, train, ScoreSettings(train_batch_size=16), DEV, log=QUIET)
        else:
            fit_factors(Tiny(), train, tmp_path / "f", FactorSettings(batch_size=16), DEV, log=QUIET)
    assert err.value.stage == stage and err.value.module is None
    assert [p.name for p in tmp_path.iterdir()] == (["f"] if stage == "scores" else [])  # no half-written factors


def test_progress_lines_name_each_stage_with_an_eta(tmp_path):
    x = torch.randn(40, 1, 8, 8)
    train = TensorDataset(x, torch.arange(40) % 3)
    lines = []
    fit_factors(Tiny(), train, tmp_path / "f", FactorSettings(batch_size=8), DEV, log=lines.append)
    for name in ("covariance", "eigendecomposition", "lambda"):
        assert any(line.startswith(f"{name}: started") for line in lines)
        assert any(line.startswith(f"{name}: done in") for line in lines)
    progress = [line for line in lines if line.startswith("covariance: ") and "ETA" in line]
    assert progress[0].startswith("covariance: 8/40 examples (20 %)") and "40/40 examples (100 %)" in progress[-1]
