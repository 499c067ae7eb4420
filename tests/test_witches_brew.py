"""Witches' Brew (gradient matching) on a tiny problem: 200 digits, a 4-channel CNN, a few steps, CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from unpoison.attacks import ATTACKS, CleanModel, get_attack
from unpoison.attacks import witches_brew as wb
from unpoison.data import DatasetInfo, ImageData, to_float
from unpoison.models import build_model
from unpoison.queries import select_queries
from unpoison.training import TrainRecipe, predict, train_model

ROOT = Path(__file__).resolve().parents[1]
SPEC = {"name": "digits_cnn", "num_classes": 10, "in_channels": 1, "options": {"width": 4}}
RECIPE = TrainRecipe(epochs=4, batch_size=32, lr=0.05, milestones=[3], crop_padding=1, flip=False)
FAST = {"budget": 8, "eps": 16, "steps": 6, "restarts": 1, "batch_size": 5}


@pytest.fixture(scope="module")
def tiny(digits) -> ImageData:
    """20 training images per class (200) and the first 60 test images."""
    y = digits.y_train.numpy()
    idx = np.sort(np.concatenate([np.flatnonzero(y == c)[:20] for c in range(10)]))
    return ImageData(digits.x_train[idx], digits.y_train[idx], digits.x_test[:60], digits.y_test[:60], digits.classes)


@pytest.fixture(scope="module")
def clean(tiny) -> CleanModel:
    torch.manual_seed(0)
    net = build_model(SPEC["name"], 10, 1, SPEC["options"])
    train_model(net, tiny.x_train, tiny.y_train, RECIPE, 0, torch.device("cpu"))
    return CleanModel(net.eval(), SPEC, RECIPE, torch.device("cpu"))


def test_poisons_stay_in_eps_touch_only_budget_adversarial_images_and_keep_labels(tiny, clean):
    result = get_attack("witches_brew", FAST).poison(tiny, 3, clean)
    t = result.truth
    idx = np.array(t["poison_indices"])
    assert len(idx) == 8 and len(set(idx)) == 8
    assert (tiny.y_train[idx] == t["adversarial_class"]).all()
    assert torch.equal(result.y_train, tiny.y_train)
    diff = result.x_train.int() - tiny.x_train.int()
    changed = np.flatnonzero(diff.abs().flatten(1).amax(1).numpy() > 0)
    assert set(changed) <= set(idx) and len(changed) > 0
    assert diff.abs().max() <= 16 and result.x_train.dtype == torch.uint8
    assert np.array_equal(result.artifacts["perturbation"], diff[idx].numpy())


def test_target_is_correctly_classified_and_adversarial_class_differs(tiny, clean):
    atk = get_attack("witches_brew", FAST)
    t = atk.poison(tiny, 1, clean).truth
    i = t["target_index"]
    assert t["target_class"] == int(tiny.y_test[i]) != t["adversarial_class"]
    assert int(predict(clean.model, tiny.x_test[i : i + 1], clean.device)[0]) == t["target_class"]
    x, y, target = atk.affected_test(tiny, t)
    assert torch.equal(x, tiny.x_test[i : i + 1]) and y.tolist() == [t["target_class"]]
    assert target.tolist() == [t["adversarial_class"]]


def test_same_seed_gives_identical_poisons_and_another_seed_differs(tiny, clean):
    atk = get_attack("witches_brew", FAST)
    a, b, c = atk.poison(tiny, 2, clean), atk.poison(tiny, 2, clean), atk.poison(tiny, 4, clean)
    assert a.truth == b.truth and torch.equal(a.x_train, b.x_train)
    assert (a.truth["target_index"], a.truth["poison_indices"]) != (c.truth["target_index"], c.truth["poison_indices"])


def test_alignment_loss_falls_over_the_steps(tiny, clean):
    atk = get_attack("witches_brew", {**FAST, "steps": 30, "augment": False, "eps": 32})
    history = atk.poison(tiny, 0, clean).artifacts["alignment_loss_per_step"][0]
    assert history[-1] < history[0] - 0.05, history


def test_alignment_loss_is_zero_for_the_target_itself(tiny, clean):
    x = to_float(tiny.x_test[:1])
    g = wb.target_gradient(clean.model, x, 3)
    assert float(wb.alignment_loss(clean.model, g, x, torch.tensor([3])).detach()) == pytest.approx(0.0, abs=1e-5)
    assert float(wb.alignment_loss(clean.model, g, x, torch.tensor([4])).detach()) > 0.01


def test_restarts_keep_the_lowest_final_loss(tiny, clean, monkeypatch):
    finals = [0.5, 0.2, 0.4]
    calls = []

    def fake(models, grads, x, y, eps, steps, lr, batch_size, pad, flip, gen):
        r = len(calls)
        calls.append(r)
        return torch.full_like(x, (r + 1) / 255), torch.tensor([0.9, finals[r]])

    monkeypatch.setattr(wb, "brew_restart", fake)
    result = get_attack("witches_brew", {**FAST, "restarts": 3}).poison(tiny, 0, clean)
    assert result.truth["chosen_restart"] == 1 and result.truth["final_alignment_loss"] == pytest.approx(finals)
    idx = result.truth["poison_indices"]
    expected = (tiny.x_train[idx].int() + 2).clamp(max=255)
    assert torch.equal(result.x_train[idx].int(), expected)


def test_low_margin_quantile_picks_the_smallest_margin_pair(tiny, clean):
    with torch.no_grad():
        logits = clean.model(to_float(tiny.x_test))
    y = tiny.y_test
    correct = (logits.argmax(1) == y).numpy()
    margin = logits.gather(1, y[:, None]) - logits
    margin[torch.arange(len(y)), y] = float("inf")
    margin[~torch.from_numpy(correct)] = float("inf")
    best = divmod(int(margin.argmin()), 10)
    n_pairs = int(correct.sum()) * 9
    atk = get_attack("witches_brew", {**FAST, "target_quantile": 0.5 / n_pairs})
    assert atk.choose_target(clean.model, tiny, np.random.default_rng(0), clean.device) == best


def test_rounding_keeps_the_perturbation_within_eps():
    x = torch.tensor([[[[0, 100, 255]]]], dtype=torch.uint8)
    delta = torch.tensor([[[[0.0, 16.49 / 255, 0.0]]]])
    assert wb.quantize_poisons(x, delta, 16).tolist() == [[[[0, 116, 255]]]]
    with pytest.raises(AssertionError, match="exceeds eps"):
        wb.quantize_poisons(x, torch.tensor([[[[0.0, 17.0 / 255, 0.0]]]]), 16)


def test_lr_milestones_are_the_references():
    assert wb.lr_milestones(250) == [93, 156, 218]


def test_several_queries_are_clipped_to_the_target_and_a_budget_above_the_smallest_class_is_refused(
    digits, tiny_trained
):
    atk = get_attack("witches_brew", {"budget": 50})
    assert type(atk).needs_clean_model and type(atk).max_queries == 1
    info = DatasetInfo((1, 8, 8), np.array([40, 60]), np.array([9, 9]))
    atk.check(DatasetInfo((1, 8, 8), np.array([90, 90]), None), 5)  # queries.count 5: one query is chosen
    model = tiny_trained[0]
    pred = int(predict(model, digits.x_test[:1], torch.device("cpu"))[0])
    truth = {"target_index": 0, "target_label": int(digits.y_test[0]), "adversarial_class": pred}
    chosen, status = select_queries(model, digits, atk, truth, 5, 0, torch.device("cpu"))
    assert len(chosen["x"]) == 1 and status.ok
    with pytest.raises(ValueError, match=r"budget: 50 .*≤ 40, the smallest class"):
        atk.check(info, 1)
    get_attack("witches_brew", {"budget": 40}).check(info, 1)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"eps": 0}, r"eps: 0 .*1\.\.255"),
        ({"eps": 256}, r"eps: 256"),
        ({"budget": 0}, r"budget: 0 .*≥ 1"),
        ({"restarts": 0}, "restarts: 0"),
        ({"target_quantile": 0.0}, r"target_quantile: 0\.0"),
        ({"eps": 1.5}, "eps: 1.5 must be an integer"),
        ({"steps": 0}, "steps: 0"),
    ],
)
def test_bad_params_are_refused(params, message):
    with pytest.raises(ValueError, match=message):
        get_attack("witches_brew", params)


def test_poison_without_the_clean_model_is_refused(tiny):
    with pytest.raises(ValueError, match="needs the clean model"):
        get_attack("witches_brew", FAST).poison(tiny, 0)


@pytest.mark.parametrize("path", ["config.yaml", "experiments/cifar10-cpu.yaml", "experiments/paper.yaml"])
def test_proposed_config_entries_are_accepted(path):
    cfg = yaml.safe_load((ROOT / path).read_text())
    entries = [s["attacks"]["witches_brew"] for s in cfg["dataset_settings"].values()]
    assert entries
    for entry in entries:
        ATTACKS.create("witches_brew", entry)
