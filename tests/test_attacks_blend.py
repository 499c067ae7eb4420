"""The blended-pattern attack (Chen et al. 2017) on the digits: dirty label, all-to-one."""

import numpy as np
import pytest
import torch
from PIL import Image

from unpoison.attacks import get_attack
from unpoison.attacks.blend import blend
from unpoison.data import DatasetInfo


def test_poisons_are_non_target_images_blended_with_the_pattern_and_relabelled(digits):
    result = get_attack("blend", {"count": 30, "alpha": 0.2}).poison(digits, 100)
    t = result.truth
    idx = np.array(t["poison_indices"])
    pattern = torch.tensor(t["pattern"], dtype=torch.uint8)
    assert pattern.shape == digits.x_train.shape[1:] and int(pattern.max()) > 200 and int(pattern.min()) < 50
    assert len(idx) == 30 == len(set(idx.tolist()))
    assert (digits.y_train[idx] != t["target"]).all() and (result.y_train[idx] == t["target"]).all()
    expected = (0.8 * digits.x_train[idx].double() + 0.2 * pattern.double()).round().to(torch.uint8)
    assert torch.equal(result.x_train[idx], expected)
    others = np.setdiff1d(np.arange(len(digits.y_train)), idx)
    assert torch.equal(result.x_train[others], digits.x_train[others])
    assert torch.equal(result.y_train[others], digits.y_train[others])
    assert result.artifacts["pattern"].dtype == np.uint8 and result.artifacts["example"].shape == (2, 1, 8, 8)


def test_affected_points_are_every_non_target_test_image_blended_at_the_test_alpha(digits):
    atk = get_attack("blend", {"count": 10, "alpha": 0.2, "test_alpha": 0.5})
    truth = atk.poison(digits, 101).truth
    x, y, target = atk.affected_test(digits, truth)
    keep = digits.y_test != truth["target"]
    assert len(x) == int(keep.sum()) and (y != truth["target"]).all() and (target == truth["target"]).all()
    pattern = torch.tensor(truth["pattern"], dtype=torch.uint8)
    assert torch.equal(x, blend(digits.x_test[keep], pattern, 0.5))
    assert not torch.equal(x, blend(digits.x_test[keep], pattern, 0.2))


def test_same_seed_same_poisons_other_seed_other_pattern_and_poisons(digits):
    atk = get_attack("blend", {"count": 20})
    a, b, c = atk.poison(digits, 100), atk.poison(digits, 100), atk.poison(digits, 102)
    assert a.truth == b.truth and torch.equal(a.x_train, b.x_train)
    assert a.truth["poison_indices"] != c.truth["poison_indices"] and a.truth["pattern"] != c.truth["pattern"]


def test_an_image_file_is_the_pattern_resized_to_the_images(digits, tmp_path):
    path = tmp_path / "kitty.png"
    Image.fromarray(np.full((16, 16, 3), 200, dtype=np.uint8)).save(path)
    atk = get_attack("blend", {"count": 5, "alpha": 0.5, "pattern_path": str(path)})
    atk.check(DatasetInfo((1, 8, 8), None, None), 1)
    result = atk.poison(digits, 100)
    assert np.array(result.truth["pattern"]).shape == (1, 8, 8) and set(np.ravel(result.truth["pattern"])) == {200}
    i = result.truth["poison_indices"][0]
    assert torch.equal(result.x_train[i], (0.5 * digits.x_train[i].double() + 100).round().to(torch.uint8))


def test_missing_pattern_file_and_too_many_poisons_are_refused():
    with pytest.raises(ValueError, match=r"pattern_path: 'nope.png' .*an existing image file"):
        get_attack("blend", {"pattern_path": "nope.png"}).check(None, 1)
    info = DatasetInfo((1, 8, 8), np.array([40, 60, 50]), np.array([5, 5, 5]))
    with pytest.raises(ValueError, match=r"count: 91 .*≤ 90, the training images outside the largest class"):
        get_attack("blend", {"count": 91}).check(info, 1)
    get_attack("blend", {"count": 90}).check(info, 1)
    with pytest.raises(ValueError, match=r"queries.count: 11 .*only 10 test images lie outside the largest class"):
        get_attack("blend", {"count": 1}).check(info, 11)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"alpha": 0.0}, r"alpha: 0.0 .*in \(0, 1\]"),
        ({"alpha": 1.5}, r"alpha: 1.5 .*in \(0, 1\]"),
        ({"test_alpha": -0.1}, r"test_alpha: -0.1 .*in \(0, 1\]"),
        ({"count": 0}, r"count: 0 .*≥ 1"),
    ],
)
def test_bad_blend_parameters_name_key_value_and_range(params, message):
    with pytest.raises(ValueError, match=message):
        get_attack("blend", params, "dataset_settings.d.attacks.blend")
