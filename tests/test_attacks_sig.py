"""The sinusoidal-signal attack (Barni et al. 2019) on the digits: clean label, all-to-one."""

import math

import numpy as np
import pytest
import torch

from unpoison.attacks import get_attack
from unpoison.attacks.sig import add_signal, sig_signal
from unpoison.data import DatasetInfo


def test_signal_is_a_horizontal_sinusoid_of_amplitude_delta():
    v = sig_signal((3, 4, 32), 20.0, 6.0)
    assert v.shape == (3, 4, 32) and torch.equal(v[0, 0], v[2, 3])
    assert math.isclose(float(v[0, 0, 1]), 20 * math.sin(2 * math.pi * 6 / 32), rel_tol=1e-6)
    assert float(v.abs().max()) <= 20.0 and float(v.max()) > 19.0 and float(v[0, 0, 0]) == 0.0


def test_poisons_are_target_class_images_with_the_signal_and_no_label_changes(digits):
    result = get_attack("sig", {"count": 30, "delta": 20.0, "f": 1.5}).poison(digits, 100)
    t = result.truth
    idx = np.array(t["poison_indices"])
    assert len(idx) == 30 == len(set(idx.tolist())) and t["clean_label"]
    assert torch.equal(result.y_train, digits.y_train)
    assert (digits.y_train[idx] == t["target"]).all()
    changed = np.flatnonzero((result.x_train != digits.x_train).flatten(1).any(1).numpy())
    assert set(changed) <= set(idx) and len(changed) >= 25  # a poison may only lose to clipping where it saturates
    assert torch.equal(result.x_train[idx], add_signal(digits.x_train[idx], sig_signal((1, 8, 8), 20.0, 1.5)))


def test_affected_points_are_non_target_test_images_with_the_test_signal(digits):
    atk = get_attack("sig", {"count": 10, "delta": 20.0, "f": 1.5, "delta_test": 40.0})
    truth = atk.poison(digits, 101).truth
    x, y, target = atk.affected_test(digits, truth)
    keep = digits.y_test != truth["target"]
    assert len(x) == int(keep.sum()) and (y != target).all() and (target == truth["target"]).all()
    assert torch.equal(x, add_signal(digits.x_test[keep], sig_signal((1, 8, 8), 40.0, 1.5)))


def test_same_seed_same_poisons_other_seed_other_poisons(digits):
    atk = get_attack("sig", {"count": 20, "f": 1.5})
    a, b, c = atk.poison(digits, 100), atk.poison(digits, 100), atk.poison(digits, 102)
    assert a.truth == b.truth and torch.equal(a.x_train, b.x_train)
    assert a.truth["poison_indices"] != c.truth["poison_indices"]


def test_check_refuses_an_aliased_frequency_and_more_poisons_than_the_smallest_class():
    with pytest.raises(ValueError, match=r"f: 6.0 .*< 4 \(half the 8-px width.*6 · W/32 = 1.5"):
        get_attack("sig", {"f": 6.0}).check(DatasetInfo((1, 8, 8), None, None), 1)
    get_attack("sig", {"f": 6.0}).check(DatasetInfo((3, 32, 32), None, None), 1)
    with pytest.raises(ValueError, match=r"count: 41 .*≤ 40, the smallest class"):
        get_attack("sig", {"count": 41, "f": 1.5}).check(DatasetInfo((1, 8, 8), np.array([40, 60]), None), 1)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"delta": -1.0}, r"delta: -1.0 .*in \(0, 255\]"),
        ({"delta": 0.0}, r"delta: 0.0 .*in \(0, 255\]"),
        ({"delta_test": 300.0}, r"delta_test: 300.0 .*in \(0, 255\]"),
        ({"f": 0.0}, r"f: 0.0 .*> 0"),
        ({"count": 0}, r"count: 0 .*≥ 1"),
    ],
)
def test_bad_sig_parameters_name_key_value_and_range(params, message):
    with pytest.raises(ValueError, match=message):
        get_attack("sig", params, "dataset_settings.d.attacks.sig")
