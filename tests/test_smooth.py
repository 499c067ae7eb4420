"""The smooth (low-frequency) trigger of Zeng et al. 2021 on a tiny digits model trained here (~1 s)."""

import numpy as np
import pytest
import torch
from scipy.fft import dctn

from unpoison.attacks import CleanModel, get_attack
from unpoison.attacks.badnet import apply_patch
from unpoison.attacks.smooth import (
    apply_trigger,
    kernel_size,
    low_pass,
    minmax_scale,
    targeted_deepfool,
    universal_smooth_trigger,
)
from unpoison.data import DatasetInfo, to_float
from unpoison.models import build_model
from unpoison.training import TrainRecipe, predict, train_model

CPU = torch.device("cpu")
PARAMS = {"count": 25, "magnitude": 0.2, "sigma": 1.5, "passes": 2, "n_images": 30, "deepfool_steps": 30}
RECIPE = TrainRecipe(epochs=6, batch_size=64, lr=0.05, milestones=[4], crop_padding=1, flip=False)


@pytest.fixture(scope="module")
def clean_model(digits) -> CleanModel:
    torch.set_num_threads(1)  # module fixtures run before the autouse one; float sums depend on the thread count
    torch.manual_seed(0)
    net = build_model("digits_cnn", 10, 1, {"width": 8})
    train_model(net, digits.x_train, digits.y_train, RECIPE, 0, CPU)
    spec = {"name": "digits_cnn", "num_classes": 10, "in_channels": 1, "options": {"width": 8}}
    return CleanModel(net.eval(), spec, RECIPE, CPU)


@pytest.fixture(scope="module")
def poisoned(digits, clean_model):
    torch.set_num_threads(1)
    return get_attack("smooth", PARAMS).poison(digits, 7, clean_model)


def low_frequency_fraction(v: np.ndarray, cutoff: int) -> float:
    """Share of the spectral energy of ``v`` (mean removed: the DC term says nothing about smoothness) in the
    2-D DCT coefficients (u, w) with u + w < cutoff."""
    c = dctn(v - v.mean(), norm="ortho", axes=(-2, -1)) ** 2
    h, w = v.shape[-2:]
    uu, ww = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    return float(c[..., (uu + ww) < cutoff].sum() / c.sum())


def test_trigger_is_low_frequency_and_within_zero_magnitude(poisoned):
    v = np.asarray(poisoned.truth["trigger"], dtype=np.float32)
    assert v.shape == (1, 8, 8)
    assert v.min() >= 0.0 and v.max() <= 0.2 + 1e-6 and v.max() == pytest.approx(0.2, abs=1e-6)  # min–max scaled
    assert low_frequency_fraction(v, 4) >= 0.9  # most energy in the lowest quarter of the 8×8 spectrum
    checkerboard = apply_patch(torch.zeros(1, 1, 8, 8, dtype=torch.uint8), "checkerboard", 3, 255, 0)
    assert low_frequency_fraction(to_float(checkerboard)[0].numpy(), 4) < 0.5  # the measure tells them apart
    assert np.array_equal(poisoned.artifacts["trigger"], v)


def test_raw_deepfool_steps_are_not_low_frequency_the_blur_makes_them(digits, clean_model):
    """The smoothness comes from the low-pass filter, not from the model's gradients."""
    x = to_float(digits.x_train[digits.y_train == 3][:5])
    raw = [targeted_deepfool(clean_model.model, x[i : i + 1], 9, 30)[0][0].numpy() for i in range(5)]
    assert np.mean([low_frequency_fraction(r, 4) for r in raw]) < 0.8
    assert np.mean([low_frequency_fraction(low_pass(torch.from_numpy(r), 1.5).numpy(), 4) for r in raw]) >= 0.9


def test_poisons_are_triggered_victim_images_with_the_target_label_and_nothing_else_changes(digits, poisoned):
    t = poisoned.truth
    idx = np.array(t["poison_indices"])
    assert t["victim"] != t["target"] and len(idx) == PARAMS["count"] == len(set(idx.tolist()))
    assert (digits.y_train[idx] == t["victim"]).all() and (poisoned.y_train[idx] == t["target"]).all()
    v = torch.tensor(t["trigger"])
    assert torch.equal(poisoned.x_train[idx], apply_trigger(digits.x_train[idx], v))
    assert (poisoned.x_train[idx].int() >= digits.x_train[idx].int()).all()  # v ≥ 0: only brightens
    assert (poisoned.x_train[idx] != digits.x_train[idx]).flatten(1).any(1).all()
    others = np.setdiff1d(np.arange(len(digits.y_train)), idx)
    assert torch.equal(poisoned.x_train[others], digits.x_train[others])
    assert torch.equal(poisoned.y_train[others], digits.y_train[others])
    example = poisoned.artifacts["example"]
    assert example.shape == (2, 1, 8, 8) and example.dtype == np.uint8
    assert np.array_equal(example[0], digits.x_train[idx[0]].numpy()) and np.array_equal(
        example[1], poisoned.x_train[idx[0]].numpy()
    )


def test_affected_test_points_are_triggered_victim_test_images(digits, poisoned):
    atk = get_attack("smooth", PARAMS)
    t = poisoned.truth
    x, y, target = atk.affected_test(digits, t)
    keep = digits.y_test == t["victim"]
    assert len(x) == int(keep.sum()) and (y == t["victim"]).all() and (target == t["target"]).all()
    assert torch.equal(x, apply_trigger(digits.x_test[keep], torch.tensor(t["trigger"])))


def test_same_seed_same_trigger_and_poisons_other_seed_differs(digits, clean_model, poisoned):
    atk = get_attack("smooth", PARAMS)
    again = atk.poison(digits, 7, clean_model)
    assert again.truth == poisoned.truth and torch.equal(again.x_train, poisoned.x_train)
    other = atk.poison(digits, 8, clean_model)
    assert other.truth["poison_indices"] != poisoned.truth["poison_indices"]


def test_deepfool_steps_raise_the_clean_models_target_rate(digits, clean_model):
    """Victim 3 towards its nearest class 9 (the published code targets the class the perturbation reaches):
    the universal trigger sends far more victim images to the target than smooth random patterns of the
    same range, and each DeepFool step alone carries its image across."""
    net = clean_model.model
    images = digits.x_train[digits.y_train == 3][:40]
    v, rates = universal_smooth_trigger(net, images, 9, 0.5, 1.5, 2, 30, np.random.default_rng(0), CPU)
    hit = float((predict(net, apply_trigger(images, v), CPU) == 9).float().mean())
    assert hit == pytest.approx(max(rates)) and hit >= 0.3
    random_rates = [
        float(
            (
                predict(
                    net,
                    apply_trigger(
                        images,
                        minmax_scale(
                            low_pass(torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(s)), 1.5), 0.5
                        ),
                    ),
                    CPU,
                )
                == 9
            )
            .float()
            .mean()
        )
        for s in range(5)
    ]
    assert hit >= np.mean(random_rates) + 0.2
    x = to_float(images[:10])
    for i in range(10):
        r, reached = targeted_deepfool(net, x[i : i + 1], 9, 30)
        assert reached and int(net(x[i : i + 1] + r).argmax(1)) == 9


def test_kernel_scales_with_sigma():
    assert kernel_size(6.0) == 31 and kernel_size(1.5) == 9 and kernel_size(30.0) == 151


def test_needs_the_clean_model(digits):
    with pytest.raises(ValueError, match="needs the clean model"):
        get_attack("smooth", PARAMS).poison(digits, 0)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"magnitude": 0.0}, r"magnitude: 0.0 .*in \(0, 1\]"),
        ({"magnitude": 1.5}, r"magnitude: 1.5 .*in \(0, 1\]"),
        ({"sigma": -1}, r"sigma: -1.0 .*> 0"),
        ({"passes": 0}, r"passes: 0 .*≥ 1"),
        ({"n_images": 0}, r"n_images: 0 .*≥ 1"),
        ({"deepfool_steps": 0}, r"deepfool_steps: 0 .*≥ 1"),
        ({"count": 0}, r"count: 0 .*≥ 1"),
        ({"magnitude": "0.2"}, r"magnitude: '0.2' must be a finite number"),
        ({"steps": 3}, r"unknown key\(s\) \['steps'\]"),
    ],
)
def test_bad_smooth_parameters_name_key_value_and_range(params, message):
    with pytest.raises(ValueError, match=message):
        get_attack("smooth", params, "dataset_settings.d.attacks.smooth")


def test_check_refuses_a_blur_wider_than_the_image_and_too_many_poisons():
    with pytest.raises(
        ValueError, match=r"sigma: 6.0 .*31-tap blur kernel's half-width \(15 px\) is below the 8-px .*1.5 px here"
    ):
        get_attack("smooth", {"sigma": 6.0}).check(DatasetInfo((1, 8, 8), None, None), 1)
    get_attack("smooth", {"sigma": 1.5}).check(DatasetInfo((1, 8, 8), None, None), 1)
    with pytest.raises(ValueError, match=r"count: 50 .*≤ 40"):
        get_attack("smooth", {"count": 50, "sigma": 1.0}).check(DatasetInfo((1, 8, 8), np.array([40, 60]), None), 1)
