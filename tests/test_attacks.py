import numpy as np
import pytest
import torch

from unpoison.attacks import get_attack
from unpoison.attacks.badnet import REFERENCE_OFFSETS, apply_patch
from unpoison.data import DatasetInfo


def test_badnet_poisons_only_victim_images_and_relabels_them(digits):
    result = get_attack(
        "badnet", {"count": 30, "pattern": "checkerboard", "size": 3, "value": 255, "margin": 0}
    ).poison(digits, 5)
    t = result.truth
    idx = np.array(t["poison_indices"])
    assert t["victim"] != t["target"] and len(idx) == 30 and len(set(idx)) == 30
    assert (digits.y_train[idx] == t["victim"]).all()
    assert (result.y_train[idx] == t["target"]).all()
    others = np.setdiff1d(np.arange(len(digits.y_train)), idx)
    assert torch.equal(result.y_train[others], digits.y_train[others])
    assert torch.equal(result.x_train[others], digits.x_train[others])
    assert (result.x_train[idx, 0, -1, -1] == 255).all() and (result.x_train[idx, 0, -1, -2] == 0).all()


def test_badnet_is_deterministic_per_seed(digits):
    atk = get_attack("badnet", {"count": 20, "pattern": "square", "size": 2, "value": 255})
    a, b, c = atk.poison(digits, 1), atk.poison(digits, 1), atk.poison(digits, 2)
    assert a.truth == b.truth and torch.equal(a.x_train, b.x_train)
    assert a.truth["poison_indices"] != c.truth["poison_indices"]


def test_reference_pattern_sets_the_four_pixels():
    x = torch.full((1, 3, 32, 32), 200, dtype=torch.uint8)
    y = apply_patch(x, "reference", value=0)
    changed = {(int(r), int(c)) for r, c in zip(*torch.nonzero(y[0, 0] != 200, as_tuple=True))}
    assert changed == {(32 + dr, 32 + dc) for dr, dc in REFERENCE_OFFSETS}


def test_affected_test_points_are_triggered_victim_images(digits):
    atk = get_attack("badnet", {"count": 10, "pattern": "checkerboard", "size": 3, "value": 255, "margin": 0})
    truth = atk.poison(digits, 0).truth
    x, y, target = atk.affected_test(digits, truth)
    assert (y == truth["victim"]).all() and (target == truth["target"]).all()
    assert len(x) == int((digits.y_test == truth["victim"]).sum())
    assert (x[:, 0, -1, -1] == 255).all()


def test_count_larger_than_smallest_class_is_refused():
    atk = get_attack("badnet", {"count": 50})
    with pytest.raises(ValueError, match="count: 50 .*≤ 40, the smallest class"):
        atk.check(DatasetInfo((3, 32, 32), np.array([40, 60, 70]), np.array([9, 9, 9])), 1)
    atk.check(DatasetInfo((3, 32, 32), np.array([50, 60, 70]), np.array([9, 9, 9])), 1)  # exactly fits


@pytest.mark.parametrize(
    "params, side, message",
    [
        ({"pattern": "checkerboard", "size": 9, "margin": 0}, 8, r"size: 9 .*size \+ margin \(9 px\) fits the 8-px"),
        ({"pattern": "square", "size": 4, "margin": 5}, 8, r"size: 4 .*\(9 px\) fits the 8-px"),
        ({"pattern": "reference"}, 4, r"reference 4-pixel trigger \(5 px\) fits the 4-px"),
    ],
)
def test_trigger_larger_than_the_image_is_refused(params, side, message):
    atk = get_attack("badnet", {"count": 1, **params})
    with pytest.raises(ValueError, match=message):
        atk.check(DatasetInfo((1, side, side), None, None), 1)
    atk.check(DatasetInfo((1, 32, 32), None, None), 1)


def test_more_queries_than_victim_test_images_is_refused():
    atk = get_attack("badnet", {"count": 1})
    with pytest.raises(ValueError, match=r"queries.count: 6 .*smallest class has only 5 test images"):
        atk.check(DatasetInfo((3, 32, 32), np.array([9, 9]), np.array([5, 7])), 6)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"value": 300}, r"value: 300 .*0\.\.255"),
        ({"value": -1}, r"value: -1 .*0\.\.255"),
        ({"count": 0}, r"count: 0 .*≥ 1"),
        ({"size": 0}, r"size: 0 .*≥ 1"),
        ({"margin": -2}, r"margin: -2 .*≥ 0"),
        ({"pattern": "star"}, r"pattern: 'star' must be one of 'reference', 'checkerboard', 'square'"),
        ({"count": 2.5}, r"count: 2.5 must be an integer"),
        ({"colour": 3}, r"unknown key\(s\) \['colour'\]; allowed: \['count', 'margin', 'pattern', 'size', 'value'\]"),
    ],
)
def test_bad_badnet_parameters_name_key_value_and_range(params, message):
    with pytest.raises(ValueError, match=message):
        get_attack("badnet", params, "dataset_settings.d.attacks.badnet")


def test_patch_that_does_not_fit_is_refused():
    with pytest.raises(ValueError, match="does not fit"):
        apply_patch(torch.zeros((1, 1, 4, 4), dtype=torch.uint8), "square", size=4, margin=1)
