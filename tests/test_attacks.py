import numpy as np
import pytest
import torch

from unpoison.attacks import get_attack
from unpoison.attacks.badnet import REFERENCE_OFFSETS, apply_patch


def test_badnet_poisons_only_victim_images_and_relabels_them(digits):
    result = get_attack("badnet", {"count": 30, "pattern": "checkerboard", "size": 3, "value": 255, "margin": 0}).poison(digits, 5)
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
    with pytest.raises(ValueError, match="count.*50.*smallest class.*40"):
        atk.check(np.array([40, 60, 70]))


def test_patch_that_does_not_fit_is_refused():
    with pytest.raises(ValueError, match="does not fit"):
        apply_patch(torch.zeros((1, 1, 4, 4), dtype=torch.uint8), "square", size=4, margin=1)
