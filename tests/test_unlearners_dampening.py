"""SSD and Potion: the importances, the exact dampening rule, and Potion's PTN search (tiny CPU model)."""

import copy
import io
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from unpoison.seeding import stage_seed
from unpoison.training import accuracy
from unpoison.unlearners import UnlearnInputs, get_unlearner
from unpoison.unlearners.dampening import dampen, importance_ratios, parameter_importances
from unpoison.unlearners.finetune import DeviceData, index_batches, seeded_generator
from unpoison.unlearners.potion import output_norm, ptn_percentile

DEV = torch.device("cpu")


def _inputs(digits, tiny_trained, forget, seed=0, log=None):
    model, spec, recipe = tiny_trained
    return UnlearnInputs(
        copy.deepcopy(model), spec, digits.x_train, digits.y_train, np.asarray(forget), recipe, seed, DEV, log
    )


def _ce(logits, y):
    return F.cross_entropy(logits, y)


def test_importance_is_the_mean_over_batches_of_squared_gradients_of_the_mean_loss(digits, tiny_trained):
    inputs = _inputs(digits, tiny_trained, np.arange(10))
    model, data = copy.deepcopy(inputs.model), DeviceData(inputs)
    batches = [torch.arange(0, 7), torch.arange(7, 20), torch.arange(20, 23)]
    imp = parameter_importances(model, data, batches, _ce, "square")
    model.eval()
    expected = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for idx in batches:
        x, y = data.batch(idx)
        grads = torch.autograd.grad(F.cross_entropy(model(x), y), list(model.parameters()))
        for (n, _), g in zip(model.named_parameters(), grads):
            expected[n] += g.pow(2) / len(batches)
    for n in expected:
        torch.testing.assert_close(imp[n], expected[n], rtol=1e-5, atol=1e-12)
    absolute = parameter_importances(model, data, batches, _ce, "abs")
    assert all((absolute[n] >= 0).all() for n in absolute) and not torch.equal(
        absolute["head.weight"], imp["head.weight"]
    )


@pytest.mark.parametrize("alpha, lam", [(1.5, 1.0), (1.5, 5.0), (10.0, 1.0)])
def test_ssd_changes_exactly_the_selected_parameters_by_min_lambda_ratio_one(digits, tiny_trained, alpha, lam):
    forget = torch.nonzero(digits.y_train == 3).flatten().numpy()  # a whole class: strong selection
    inputs = _inputs(digits, tiny_trained, forget)
    before = copy.deepcopy(inputs.model)
    ssd = get_unlearner("ssd", {"alpha": alpha, "dampening": lam, "batch_size": 64})
    after = ssd.unlearn(inputs)
    # the same importances, recomputed with the run's stream (it only fixes the batch composition)
    gen = seeded_generator(stage_seed(0, "unlearn/ssd"))
    data = DeviceData(inputs)
    ref = copy.deepcopy(before)
    imp_f = parameter_importances(ref, data, list(index_batches(torch.as_tensor(forget), 64, gen)), _ce, "square")
    imp_d = parameter_importances(
        ref, data, list(index_batches(torch.arange(len(digits.y_train)), 64, gen)), _ce, "square"
    )
    new, old = dict(after.named_parameters()), dict(before.named_parameters())
    n_selected, n_shrunk, n_clamped = 0, 0, 0
    for name in old:
        f, d = imp_f[name], imp_d[name]
        sel = f > alpha * d
        factor = torch.clamp(lam * d / f, max=1.0)
        assert torch.equal(new[name][~sel], old[name][~sel]), f"{name}: an unselected parameter changed"
        torch.testing.assert_close(new[name][sel], old[name][sel] * factor[sel], rtol=1e-6, atol=0)
        n_selected += int(sel.sum())
        n_shrunk += int((sel & (factor < 1)).sum())
        n_clamped += int((sel & (factor == 1)).sum())
    assert n_selected == ssd.report["selected"] > 0 and n_shrunk > 0
    if lam > alpha:
        assert n_clamped > 0  # selected but λ·[]_D/[]_f ≥ 1: left as it was
    for (name, a), (_, b) in zip(after.named_buffers(), before.named_buffers()):
        assert torch.equal(a, b), name  # BatchNorm statistics untouched
    assert ssd.report["budget_epochs"] == pytest.approx(1 + len(forget) / len(digits.y_train))


def test_dampen_never_increases_a_parameter_and_skips_zero_importance(tiny_trained):
    model = copy.deepcopy(tiny_trained[0])
    names = [n for n, _ in model.named_parameters()]
    forget = {n: torch.ones_like(p) for n, p in model.named_parameters()}
    reference = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    reference[names[0]] = torch.full_like(reference[names[0]], 2.0)  # f = 1 < α·2: not selected
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    selected = dampen(model, forget, reference, alpha=1.0, dampening=1.0)
    after = dict(model.named_parameters())
    assert torch.equal(after[names[0]], before[names[0]])
    for n in names[1:]:
        assert torch.equal(after[n], torch.zeros_like(after[n]))  # []_D = 0: factor min(0, 1) = 0
    assert selected == sum(p.numel() for n, p in model.named_parameters() if n != names[0])


def test_potion_importances_ignore_the_labels(digits, tiny_trained):
    inputs = _inputs(digits, tiny_trained, np.arange(30))
    data = DeviceData(inputs)
    batches = [torch.arange(0, 30)]
    a = parameter_importances(copy.deepcopy(inputs.model), data, batches, output_norm, "abs")
    data.y = torch.roll(data.y, 1)
    b = parameter_importances(copy.deepcopy(inputs.model), data, batches, output_norm, "abs")
    assert all(torch.equal(a[n], b[n]) for n in a)


def test_potion_search_stops_at_rho_logs_its_step_and_dampens_a_fresh_copy(digits, tiny_trained):
    forget = torch.nonzero(digits.y_train == 5).flatten()[:40].numpy()
    log = io.StringIO()
    inputs = _inputs(digits, tiny_trained, forget, log=log)
    original = copy.deepcopy(inputs.model)
    potion = get_unlearner("potion", {"rho": 0.5, "batch_size": 64})
    out = potion.unlearn(inputs)
    rep, text = potion.report, log.getvalue()
    step = rep["ptn_step"]
    assert rep["ptn_reached"] and 1 <= step < 500
    assert f"PTN search stopped at step {step} " in text
    assert text.count("potion: step ") == step  # one line per attempt
    acc0 = accuracy(original, digits.x_train[forget], digits.y_train[forget], DEV)
    acc = accuracy(out, digits.x_train[forget], digits.y_train[forget], DEV)
    assert (
        acc == pytest.approx(rep["forget_acc_after"])
        and acc <= 0.5 * acc0
        and rep["forget_acc_before"] == pytest.approx(acc0)
    )
    # s followed the schedule, and the result is ONE dampening of the trained model with that step's α
    n_f, n = len(forget), len(digits.y_train)
    s = n_f / n / 25 * 1.1 ** (step - 1)
    assert rep["ptn_s"] == pytest.approx(s)
    gen = seeded_generator(stage_seed(0, "unlearn/potion"))
    data = DeviceData(inputs)
    retain = inputs.retain_indices()
    imp_f = parameter_importances(
        copy.deepcopy(original), data, list(index_batches(torch.as_tensor(forget), 64, gen)), output_norm, "abs"
    )
    imp_r = parameter_importances(
        copy.deepcopy(original), data, list(index_batches(retain, 64, gen)), output_norm, "abs"
    )
    alpha = float(np.percentile(importance_ratios(imp_f, imp_r), ptn_percentile(s)))
    assert rep["alpha"] == pytest.approx(alpha)
    expected = copy.deepcopy(original)
    dampen(expected, imp_f, imp_r, alpha, 1.0)
    for (name, a), (_, b) in zip(out.state_dict().items(), expected.state_dict().items()):
        assert torch.equal(a, b), name


def test_potion_caps_its_search_and_says_so(digits, tiny_trained):
    log = io.StringIO()
    inputs = _inputs(digits, tiny_trained, np.arange(0, 200, 2), log=log)  # clean points: ρ = 0 is out of reach
    potion = get_unlearner("potion", {"rho": 0.0, "max_steps": 3})
    potion.unlearn(inputs)
    assert potion.report["ptn_step"] == 3 and not potion.report["ptn_reached"]
    assert "reached max_steps=3" in log.getvalue()


def test_ptn_percentile_follows_the_reference_formula():
    assert ptn_percentile(0.0) == 100.0
    assert ptn_percentile(0.01) == pytest.approx(100 - math.log(2))
    assert ptn_percentile(1e300) == 0.0
