"""Gaussian poisoning (Pawelczyk et al. 2025) and its Gaussian Unlearning Score."""

import numpy as np
import pytest
import torch

from unpoison.attacks import get_attack
from unpoison.data import DatasetInfo
from unpoison.gus import (
    channel_moments,
    gaussian_unlearning_score,
    gus_summary,
    input_gradients,
    noisy_pixels,
    null_draws,
    score_perturbations,
)
from unpoison.queries import select_queries
from unpoison.status import State

CPU = torch.device("cpu")


@pytest.mark.parametrize("sigma", [0.05, 0.3])
def test_channel_moments_match_monte_carlo(sigma):
    """The exact per-pixel mean/variance of the rounded, clipped channel agree with 200k simulated draws,
    including the clipped extremes where the perturbation is one-sided."""
    mean, var = channel_moments(sigma)
    gen = torch.Generator().manual_seed(0)
    for p in (0, 3, 128, 250, 255):
        x = torch.full((200_000,), p, dtype=torch.uint8)
        d = (noisy_pixels(x, torch.randn(x.shape, generator=gen, dtype=torch.float64), sigma).double() - p) / 255
        assert float(d.mean()) == pytest.approx(float(mean[p]), abs=4 * sigma / 200_000**0.5 + 1e-6)
        assert float(d.var()) == pytest.approx(float(var[p]), rel=0.02)
    assert float(mean[0]) > 0.3 * sigma and float(mean[255]) < -0.3 * sigma  # clipping makes the extremes one-sided
    if sigma < 0.1:  # mid-grey is then > 4σ from both ends: no clipping, variance σ² + the rounding's 1/12 step²
        assert float(var[128]) == pytest.approx(sigma**2 + 1 / 12 / 255**2, rel=0.01)


def test_poison_adds_noise_to_count_images_and_keeps_labels(digits):
    atk = get_attack("gaussian", {"count": 30, "sigma": 0.25})
    res = atk.poison(digits, seed=3)
    idx = np.asarray(res.truth["poison_indices"])
    changed = np.flatnonzero((res.x_train != digits.x_train).flatten(1).any(1).numpy())
    assert len(idx) == 30 and set(changed) <= set(idx) and len(changed) >= 29
    assert torch.equal(res.y_train, digits.y_train)
    again = atk.poison(digits, seed=3)
    assert torch.equal(again.x_train, res.x_train) and again.truth == res.truth
    assert atk.poison(digits, seed=4).truth["poison_indices"] != res.truth["poison_indices"]
    # interior pixels (far from 0 and 255) carry noise of std ≈ σ
    clean, noisy = digits.x_train[idx].double(), res.x_train[idx].double()
    interior = (clean > 100) & (clean < 155)
    assert float(((noisy - clean)[interior] / 255).std()) == pytest.approx(0.25, rel=0.15)


def test_no_query_for_an_attack_that_affects_no_test_point(digits, tiny_trained):
    atk = get_attack("gaussian", {"count": 5, "sigma": 0.1})
    res = atk.poison(digits, seed=0)
    chosen, status = select_queries(tiny_trained[0], digits, atk, res.truth, 1, 0, CPU)
    assert len(chosen["x"]) == 0 and status.state is State.NO_QUERY
    assert status.label.startswith("n/a (no affected test point") and status.blocks(True) and not status.blocks(False)
    with pytest.raises(ValueError, match="count"):
        atk_big = get_attack("gaussian", {"count": 10_000, "sigma": 0.1})
        atk_big.check(DatasetInfo(image_shape=(1, 8, 8), train_counts=np.full(10, 100), test_counts=None), 1)


def test_null_calibration_on_a_model_that_never_saw_the_noise(digits, tiny_trained):
    """I ~ N(0, 1) under the null: mean within ±0.2 and std within 0.8–1.2 over 600 draws on digits, whose black
    background clips the noise (the exact channel moments keep the score centred)."""
    model = tiny_trained[0]
    idx = torch.arange(600)
    clean, y = digits.x_train[idx], digits.y_train[idx]
    noisy = noisy_pixels(
        clean, torch.randn(clean.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64), 0.25
    )
    out = gaussian_unlearning_score(model, clean, noisy, y, 0.25, CPU, seed=0, n_null=2)
    values = np.asarray(out["gus_values"])
    assert len(values) == 600
    assert abs(values.mean()) < 0.2 and 0.8 < values.std() < 1.2
    assert abs(out["gus_null_mean"]) < 0.2 and 0.8 < out["gus_null_std"] < 1.2
    assert 0.4 < out["gus_auc"] < 0.6  # the "poisons" are indistinguishable from fresh draws


def test_score_detects_a_perturbation_aligned_against_the_gradient(digits, tiny_trained):
    """A perturbation along −g (what fitting x + δ to y does to the loss landscape) gives I < 0 and is
    separated from the null; one along +g gives I > 0 (the score's sign and scale)."""
    model = tiny_trained[0]
    clean, y = digits.x_train[:50], digits.y_train[:50]
    g = input_gradients(model, clean, y, CPU)
    unit = g / g.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    toward = score_perturbations(g, clean, -0.05 * unit, 0.01)
    away = score_perturbations(g, clean, 0.05 * unit, 0.01)
    assert (toward < -2).all() and (away > 2).all()
    null = score_perturbations(g, clean, null_draws(clean, 0.01, 20, torch.Generator().manual_seed(0)), 0.01)
    s = gus_summary(toward.numpy(), null.numpy().ravel())
    assert s["gus_tpr_at_1fpr"] == 1.0 and s["gus_auc"] == 1.0


def test_input_gradients_are_per_example(digits, tiny_trained):
    model = tiny_trained[0]
    both = input_gradients(model, digits.x_train[:4], digits.y_train[:4], CPU, batch_size=4)
    one = input_gradients(model, digits.x_train[2:3], digits.y_train[2:3], CPU)
    torch.testing.assert_close(both[2:3], one, rtol=1e-4, atol=1e-7)
