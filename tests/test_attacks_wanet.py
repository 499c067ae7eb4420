"""The WaNet warping attack (Nguyen & Tran 2021) on the digits: dirty label, all-to-one, noise mode."""

import numpy as np
import pytest
import torch

from unpoison.attacks import get_attack
from unpoison.attacks.wanet import identity_grid, warp, warp_control, warp_grid
from unpoison.data import DatasetInfo


@pytest.fixture(scope="module")
def poisoned(digits):
    atk = get_attack("wanet", {"count": 20, "k": 4, "s": 0.5, "cross_ratio": 2.0})
    return atk, atk.poison(digits, 100)


def test_identity_grid_reproduces_the_image_and_control_offsets_have_unit_mean_magnitude(digits):
    x = digits.x_train[:5]
    assert torch.equal(warp(x, identity_grid(8, 8)), x)
    c = warp_control(4, np.random.default_rng(0))
    assert c.shape == (2, 4, 4) and abs(float(np.abs(c).mean()) - 1.0) < 1e-5


def test_the_warp_moves_pixels_by_less_than_s_times_the_largest_offset_and_grows_with_s():
    c = warp_control(4, np.random.default_rng(0))
    shift = {s: (warp_grid(c, 8, 8, s, 1.0) - identity_grid(8, 8)).abs() * 3.5 for s in (0.25, 0.5)}  # in pixels
    assert 0 < float(shift[0.5].max()) < 0.5 * float(np.abs(c).max())
    assert torch.allclose(shift[0.5], 2 * shift[0.25], atol=1e-5)  # no clamping this deep inside [-1, 1]


def test_poisons_are_warped_relabelled_non_target_images_and_noise_images_keep_their_labels(digits, poisoned):
    atk, result = poisoned
    t = result.truth
    idx, noise = np.array(t["poison_indices"]), np.array(t["noise_indices"])
    assert len(idx) == 20 and len(noise) == 40 and not set(idx) & set(noise)
    assert t["modified_indices"] == sorted(set(idx) | set(noise))
    assert (digits.y_train[idx] != t["target"]).all() and (result.y_train[idx] == t["target"]).all()
    assert torch.equal(result.y_train[noise], digits.y_train[noise])
    grid = atk.grid(t, 8, 8)
    assert torch.equal(result.x_train[idx], warp(digits.x_train[idx], grid))
    assert not torch.equal(result.x_train[noise], warp(digits.x_train[noise], grid))  # the noise makes them differ
    others = np.setdiff1d(np.arange(len(digits.y_train)), t["modified_indices"])
    assert torch.equal(result.x_train[others], digits.x_train[others])
    assert torch.equal(result.y_train[others], digits.y_train[others])
    assert result.artifacts["warp_field"].shape == (2, 1, 8, 8) and result.artifacts["example"].dtype == np.uint8


def test_affected_points_are_the_non_target_test_images_warped_by_the_same_field(digits, poisoned):
    atk, result = poisoned
    x, y, target = atk.affected_test(digits, result.truth)
    keep = digits.y_test != result.truth["target"]
    assert len(x) == int(keep.sum()) and (y != target).all() and (target == result.truth["target"]).all()
    assert torch.equal(x, warp(digits.x_test[keep], atk.grid(result.truth, 8, 8)))
    assert (x != digits.x_test[keep]).float().mean() > 0.3


def test_same_seed_same_poisons_other_seed_other_field_and_poisons(digits, poisoned):
    atk, a = poisoned
    b, c = atk.poison(digits, 100), atk.poison(digits, 102)
    assert a.truth == b.truth and torch.equal(a.x_train, b.x_train)
    assert a.truth["poison_indices"] != c.truth["poison_indices"] and a.truth["warp_control"] != c.truth["warp_control"]


def test_check_refuses_a_grid_finer_than_the_image_and_more_images_than_the_set():
    with pytest.raises(ValueError, match=r"k: 9 .*≤ 8, the image side"):
        get_attack("wanet", {"k": 9}).check(DatasetInfo((1, 8, 8), None, None), 1)
    info = DatasetInfo((1, 8, 8), np.array([40, 60, 50]), None)
    with pytest.raises(ValueError, match=r"cross_ratio: 150 .*count \+ 150 noise images ≤ 150"):
        get_attack("wanet", {"count": 50, "cross_ratio": 3.0}).check(info, 1)
    get_attack("wanet", {"count": 50, "cross_ratio": 2.0}).check(info, 1)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"k": 0}, r"k: 0 .*≥ 1"),
        ({"s": 0.0}, r"s: 0.0 .*> 0"),
        ({"grid_rescale": 0.0}, r"grid_rescale: 0.0 .*> 0"),
        ({"cross_ratio": -1.0}, r"cross_ratio: -1.0 .*≥ 0"),
        ({"count": 0}, r"count: 0 .*≥ 1"),
    ],
)
def test_bad_wanet_parameters_name_key_value_and_range(params, message):
    with pytest.raises(ValueError, match=message):
        get_attack("wanet", params, "dataset_settings.d.attacks.wanet")
