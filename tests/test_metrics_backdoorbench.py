"""Robust accuracy (R-Acc) and the defense effectiveness rating (DER) of BackdoorBench, against values
computed by hand for a toy model whose predictions are fixed."""

import math

import pytest
import torch
from torch import nn

from unpoison.attacks import Attack
from unpoison.data import ImageData
from unpoison.metrics import der, model_metrics


class FirstPixelModel(nn.Module):
    """Predicts the class written in an image's first pixel (images reach it in [0, 1])."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cls = (x[:, 0, 0, 0] * 255).round().long()
        return nn.functional.one_hot(cls, 6).float() * 10


def images(first_pixels: list[int]) -> torch.Tensor:
    x = torch.zeros(len(first_pixels), 1, 2, 2, dtype=torch.uint8)
    x[:, 0, 0, 0] = torch.tensor(first_pixels, dtype=torch.uint8)
    return x


class FixedAttack(Attack):
    """Four affected test points of true classes 1, 2, 3, 4 and target 0, which the model sends to 0, 0, 3, 5."""

    def poison(self, data, seed, clean=None):
        raise NotImplementedError

    def affected_test(self, data, truth):
        return images([0, 0, 3, 5]), torch.tensor([1, 2, 3, 4]), torch.zeros(4, dtype=torch.int64)


def test_psr_and_r_acc_of_a_model_with_known_predictions():
    data = ImageData(
        images([0, 1]), torch.tensor([0, 1]), images([0, 1, 2, 5, 4]), torch.tensor([0, 1, 2, 3, 4]), list("abcdef")
    )
    m = model_metrics(FirstPixelModel(), data, FixedAttack(), {}, torch.device("cpu"))
    assert m["clean_acc"] == pytest.approx(4 / 5)  # the test image of class 3 is called 5
    assert m["psr"] == pytest.approx(2 / 4)  # classes 1 and 2 → target 0
    assert m["r_acc"] == pytest.approx(1 / 4)  # only class 3 keeps its true label; class 4 → 5 is neither


def test_der_by_hand():
    # PSR 0.90 → 0.10 (Δ 0.80), accuracy 0.95 → 0.90 (Δ 0.05): (0.80 − 0.05 + 1) / 2
    assert der(0.90, 0.95, 0.10, 0.90) == pytest.approx(0.875)
    # gains are clipped at 0: a PSR that rises and an accuracy that rises change nothing
    assert der(0.20, 0.80, 0.30, 0.90) == pytest.approx(0.5)
    assert der(1.0, 0.5, 0.0, 0.5) == pytest.approx(1.0) and der(0.0, 1.0, 0.0, 0.0) == pytest.approx(0.0)
    assert math.isnan(der(float("nan"), 0.9, 0.1, 0.9))


def test_der_refuses_percentages():
    with pytest.raises(ValueError, match=r"psr_before = 90.0 is not a fraction in \[0, 1\]"):
        der(90.0, 0.95, 0.1, 0.9)
