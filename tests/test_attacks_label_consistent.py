"""The label-consistent attack (Turner et al. 2019) on the digits with a tiny clean model: clean label, PGD
away from the true class, then the corner trigger."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from unpoison.attacks import CleanModel, get_attack
from unpoison.attacks.label_consistent import CORNER, apply_corner_trigger, corner_mask, pgd_away
from unpoison.data import DatasetInfo, to_float

CPU = torch.device("cpu")
PARAMS = {"count": 20, "eps": 32, "steps": 10, "step_size": 8.0}


@pytest.fixture(scope="module")
def clean(tiny_trained):
    model, spec, recipe = tiny_trained
    return CleanModel(copy.deepcopy(model).eval(), spec, recipe, CPU)


@pytest.fixture(scope="module")
def poisoned(digits, clean):
    torch.set_num_threads(1)
    atk = get_attack("label_consistent", PARAMS)
    return atk, atk.poison(digits, 100, clean)


def test_corner_mask_holds_the_published_pattern_mirrored_on_the_right():
    m = corner_mask(8, 8, "all")
    assert torch.equal(m[:3, :3], torch.from_numpy(CORNER)) and torch.equal(m[5:, :3], torch.from_numpy(CORNER))
    assert torch.equal(m[:3, 5:], torch.from_numpy(CORNER[:, ::-1].copy())) and torch.equal(m, m.flip(1))
    assert int((m != 0).sum()) == 36 and int((m[3:5] != 0).sum()) == 0
    br = corner_mask(8, 8, "bottom-right")
    assert int((br != 0).sum()) == 9 and torch.equal(br[5:, 5:], m[5:, 5:])
    big = corner_mask(32, 32, "all", cell=2)
    assert torch.equal(big[:6, :6], torch.from_numpy(np.kron(CORNER, np.ones((2, 2), dtype=np.float32))))


def test_full_amplitude_sets_white_and_black_reduced_amplitude_adds(digits):
    x = digits.x_train[:4]
    m = corner_mask(8, 8, "all")
    full = apply_corner_trigger(x, m, 255)
    assert (
        (full[..., m == 1] == 255).all()
        and (full[..., m == -1] == 0).all()
        and torch.equal(full[..., m == 0], x[..., m == 0])
    )
    low = apply_corner_trigger(x, m, 64)
    assert torch.equal(low[..., m == 1], (x[..., m == 1].int() + 64).clamp(max=255).to(torch.uint8))


def test_pgd_stays_in_the_ball_and_pushes_images_away_from_their_class(digits, clean):
    x, y = digits.x_train[:64], digits.y_train[:64]
    adv = pgd_away(clean.model, x, y, 16, 4.0, 10, CPU)
    assert adv.dtype == torch.uint8 and int((adv.int() - x.int()).abs().max()) <= 16
    with torch.no_grad():
        before = F.cross_entropy(clean.model(to_float(x)), y)
        after = F.cross_entropy(clean.model(to_float(adv)), y)
    assert float(after) > float(before) + 0.5


def test_poisons_are_perturbed_triggered_target_images_and_no_label_changes(digits, poisoned):
    _, result = poisoned
    t = result.truth
    idx = np.array(t["poison_indices"])
    assert len(idx) == 20 and t["clean_label"] and (digits.y_train[idx] == t["target"]).all()
    assert torch.equal(result.y_train, digits.y_train)
    changed = np.flatnonzero((result.x_train != digits.x_train).flatten(1).any(1).numpy())
    assert set(changed) == set(idx)
    m = corner_mask(8, 8, "all")
    p = result.x_train[idx]
    assert (p[..., m == 1] == 255).all() and (p[..., m == -1] == 0).all()
    outside = (p[..., m == 0].int() - digits.x_train[idx][..., m == 0].int()).abs()
    assert int(outside.max()) <= PARAMS["eps"] and int(outside.max()) > 0  # the PGD perturbation, within eps
    assert 0.0 <= t["clean_model_acc_on_perturbed"] <= 1.0
    assert result.artifacts["example"].shape == (3, 1, 8, 8) and result.artifacts["trigger"].shape == (1, 8, 8)


def test_affected_points_are_non_target_test_images_with_the_test_amplitude_trigger(digits, clean):
    atk = get_attack("label_consistent", {**PARAMS, "amplitude": 32, "test_amplitude": 255, "corners": "bottom-right"})
    truth = atk.poison(digits, 101, clean).truth
    x, y, target = atk.affected_test(digits, truth)
    keep = digits.y_test != truth["target"]
    assert len(x) == int(keep.sum()) and (y != target).all() and (target == truth["target"]).all()
    assert torch.equal(x, apply_corner_trigger(digits.x_test[keep], corner_mask(8, 8, "bottom-right"), 255))


def test_same_seed_same_poisons_other_seed_other_poisons(digits, clean, poisoned):
    atk, a = poisoned
    b, c = atk.poison(digits, 100, clean), atk.poison(digits, 102, clean)
    assert a.truth == b.truth and torch.equal(a.x_train, b.x_train)
    assert a.truth["poison_indices"] != c.truth["poison_indices"]


def test_needs_the_clean_model_and_refuses_a_trigger_that_does_not_fit(digits):
    atk = get_attack("label_consistent", PARAMS)
    assert atk.needs_clean_model
    with pytest.raises(ValueError, match="needs the clean model"):
        atk.poison(digits, 0)
    with pytest.raises(ValueError, match=r"corners: 'all' .*at least 6 px \(these are 5 px\)"):
        atk.check(DatasetInfo((1, 5, 5), None, None), 1)
    get_attack("label_consistent", {"corners": "bottom-right"}).check(DatasetInfo((1, 5, 5), None, None), 1)
    with pytest.raises(ValueError, match=r"6×6 corner patches \(cell 2\) need images of at least 12 px"):
        get_attack("label_consistent", {"cell": 2}).check(DatasetInfo((1, 8, 8), None, None), 1)
    with pytest.raises(ValueError, match=r"count: 41 .*≤ 40, the smallest class"):
        get_attack("label_consistent", {"count": 41}).check(DatasetInfo((1, 8, 8), np.array([40, 60]), None), 1)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"eps": 256}, r"eps: 256 .*0\.\.255"),
        ({"eps": -1}, r"eps: -1 .*0\.\.255"),
        ({"steps": 0}, r"steps: 0 .*≥ 1"),
        ({"step_size": 0.0}, r"step_size: 0.0 .*in \(0, 255\]"),
        ({"amplitude": 0}, r"amplitude: 0 .*1\.\.255"),
        ({"test_amplitude": 300}, r"test_amplitude: 300 .*1\.\.255"),
        ({"corners": "top"}, r"corners: 'top'"),
        ({"cell": 0}, r"cell: 0 .*≥ 1"),
        ({"count": 0}, r"count: 0 .*≥ 1"),
    ],
)
def test_bad_label_consistent_parameters_name_key_value_and_range(params, message):
    with pytest.raises(ValueError, match=message):
        get_attack("label_consistent", params, "dataset_settings.d.attacks.label_consistent")
