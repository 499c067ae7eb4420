"""The cost estimate from layer shapes, the 'auto' caps chosen from it, and progress lines."""

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from unpoison.influence import FactorSettings, fit_factors
from unpoison.influence.cost import (
    COVARIANCE_BUDGET_EPOCHS,
    LAMBDA_BUDGET_EPOCHS,
    LAMBDA_FLOOR,
    auto_cap,
    auto_caps,
    estimate_cost,
    layer_shapes,
)
from unpoison.influence.progress import Progress
from unpoison.params import ParamError

DEV = torch.device("cpu")


class Net(nn.Module):
    def __init__(self, width=8):
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.fc1 = nn.Linear(4 * width, 64)
        self.fc2 = nn.Linear(64, 5, bias=False)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(self.pool(torch.relu(self.conv(x))).flatten(1))))


def _data(n, side=8):
    g = torch.Generator().manual_seed(0)
    return TensorDataset(torch.rand(n, 3, side, side, generator=g), torch.arange(n) % 5)


def test_layer_shapes_and_flops_follow_the_formulas():
    net = Net().train()
    shapes = layer_shapes(net, torch.rand(2, 3, 8, 8))
    layers = [("conv", 64, 28, 8), ("fc1", 1, 33, 64), ("fc2", 1, 64, 5)]  # (T, d_in incl. bias, d_out)
    assert [(s.name, s.positions, s.d_in, s.d_out) for s in shapes] == layers
    assert net.training  # the estimate's forward pass leaves the model's mode alone
    est = estimate_cost(net, _data(10), n_queries=3, measure=False)
    fwd = 2 * sum(t * i * o for _, t, i, o in layers)
    assert est.per_image["epoch"] == 3 * fwd
    assert est.per_image["covariance"] == 3 * fwd + 2 * sum(t * (i * i + o * o) for _, t, i, o in layers)
    assert est.per_image["lambda"] == 3 * fwd + 2 * sum(t * i * o + o * o * i + o * i * i for _, t, i, o in layers)
    assert est.per_image["scores"] == 3 * fwd + 2 * sum((t + 3) * i * o for _, t, i, o in layers)
    assert est.seconds("lambda") is None and est.flops("lambda", 4) == 4 * est.per_image["lambda"]


def test_auto_caps_come_from_flops_and_explicit_values_win():
    est = estimate_cost(Net(), _data(10), measure=False)
    est.n_train = 100_000
    ratio = est.per_image["lambda"] / est.per_image["epoch"]
    assert ratio > LAMBDA_BUDGET_EPOCHS  # this net's lambda stage costs more than the budget: auto caps it
    expected = int(100_000 * LAMBDA_BUDGET_EPOCHS / ratio)
    cap = auto_cap(est, "lambda", LAMBDA_BUDGET_EPOCHS, LAMBDA_FLOOR)
    assert cap <= expected < cap * 1.1 and len(str(cap).rstrip("0")) <= 2  # two significant digits
    assert auto_cap(est, "lambda", ratio, LAMBDA_FLOOR) is None  # within budget: every example
    assert auto_cap(est, "lambda", LAMBDA_BUDGET_EPOCHS, 99_000) == 99_000  # never below the floor
    est.n_train = LAMBDA_FLOOR
    assert auto_cap(est, "lambda", LAMBDA_BUDGET_EPOCHS, LAMBDA_FLOOR) is None  # the floor covers the whole set
    est.n_train = 100_000
    chosen = auto_caps(est, FactorSettings(covariance_max_examples=7, lambda_max_examples="auto"))
    assert chosen.covariance_max_examples == 7 and chosen.lambda_max_examples == cap
    kept = auto_caps(est, FactorSettings(covariance_max_examples=None, lambda_max_examples=None))
    assert kept.covariance_max_examples is None and kept.lambda_max_examples is None
    measured = estimate_cost(Net(), _data(10), measure=True)
    measured.n_train = 100_000
    assert auto_caps(measured, FactorSettings(lambda_max_examples="auto")).lambda_max_examples == cap  # timing-free
    assert COVARIANCE_BUDGET_EPOCHS > 0


def test_auto_settings_are_checked_and_resolved_by_the_fit(tmp_path):
    assert FactorSettings.from_dict({"lambda_max_examples": "auto"}).lambda_max_examples == "auto"
    with pytest.raises(ParamError, match="lambda_max_examples"):
        FactorSettings.from_dict({"lambda_max_examples": "all"})
    with pytest.raises(ParamError, match="covariance_max_examples: 0 is not allowed"):
        FactorSettings(covariance_max_examples=0)
    with pytest.raises(ValueError, match="resolve the 'auto' caps"):
        FactorSettings(lambda_max_examples="auto").arguments()
    lines = []
    report = fit_factors(
        Net(),
        _data(40),
        tmp_path / "f",
        FactorSettings(batch_size=8, lambda_max_examples="auto"),
        DEV,
        log=lines.append,
    )
    assert report.settings["lambda_max_examples"] in (None, *range(1, 41))  # resolved, never 'auto'
    assert lines[0].startswith("EK-FAC cost estimate: 40 training images, 3 tracked layers")
    assert any(line.startswith("  lambda: ") and "epochs' worth" in line for line in lines)
    assert report.cost["caps"]["lambda"] == report.settings["lambda_max_examples"]


def test_a_model_with_no_trackable_layer_is_named():
    with pytest.raises(ValueError, match="no layer EK-FAC can track"):
        estimate_cost(nn.Sequential(nn.Flatten(), nn.ReLU()), _data(4), measure=False)


def test_progress_logs_every_tenth_with_an_eta():
    lines = []
    meter = Progress("lambda", 1000, lines.append)
    for _ in range(40):
        meter.advance(25)
    assert len(lines) == 10 and lines[0].startswith("lambda: 100/1,000 examples (10 %)") and "ETA" in lines[0]
    assert lines[-1].startswith("lambda: 1,000/1,000 examples (100 %)") and "ETA 0 s" in lines[-1]
