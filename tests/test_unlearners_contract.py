"""What every registered unlearner promises: seeded determinism, an empty forget set returns the model
unchanged (logged), a whole class as the forget set works, a report with the compute budget."""

import copy
import io

import numpy as np
import pytest
import torch

from unpoison.unlearners import UNLEARNERS, UnlearnInputs, get_unlearner

DEV = torch.device("cpu")
# small budgets where the defaults would make the test slow; every other setting is the default
FAST = {"potion": {"max_steps": 20, "rho": 0.5}, "cf": {"epochs": 1}, "neggrad_plus": {"epochs": 1}}
TRAINED = sorted(n for n in UNLEARNERS if n != "none")
STOCHASTIC = ["badt", "cf", "eu", "ga", "neggrad_plus", "scrub"]  # draw orders/initialisations from the seed


def _inputs(digits, tiny_trained, forget, seed=0, log=None):
    model, spec, recipe = tiny_trained
    return UnlearnInputs(
        copy.deepcopy(model),
        spec,
        digits.x_train,
        digits.y_train,
        np.asarray(forget, dtype=np.int64),
        recipe,
        seed,
        DEV,
        log,
    )


def _weights(model):
    return [v.detach().clone() for v in model.state_dict().values()]


def test_every_unlearner_of_the_issue_is_registered():
    assert {"none", "eu", "cf", "ssd", "scrub", "badt", "potion", "ga", "neggrad_plus"} <= set(UNLEARNERS)


@pytest.mark.parametrize("name", TRAINED)
def test_same_seed_gives_identical_unlearned_weights(digits, tiny_trained, name):
    forget = np.arange(0, 600, 7)
    runs = [get_unlearner(name, FAST.get(name)).unlearn(_inputs(digits, tiny_trained, forget)) for _ in range(2)]
    a, b = (_weights(m) for m in runs)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    changed = any(not torch.equal(x, y) for x, y in zip(a, _weights(tiny_trained[0])))
    assert changed, f"{name} left the model as it was"
    if name in STOCHASTIC:
        other = _weights(get_unlearner(name, FAST.get(name)).unlearn(_inputs(digits, tiny_trained, forget, seed=1)))
        assert any(not torch.equal(x, y) for x, y in zip(a, other)), f"{name} ignores the seed"


@pytest.mark.parametrize("name", TRAINED)
def test_an_empty_forget_set_returns_the_model_unchanged_and_logs_it(digits, tiny_trained, name):
    log = io.StringIO()
    inputs = _inputs(digits, tiny_trained, [], log=log)
    before = _weights(inputs.model)
    method = get_unlearner(name, FAST.get(name))
    assert method.unlearn(inputs) is inputs.model
    assert all(torch.equal(x, y) for x, y in zip(before, _weights(inputs.model)))
    assert "forget set is empty" in log.getvalue()
    assert method.report == {"budget_epochs": 0.0, "empty_forget": True}


@pytest.mark.parametrize("name", TRAINED)
def test_a_whole_class_as_forget_set_unlearns_to_finite_weights(digits, tiny_trained, name):
    forget = torch.nonzero(digits.y_train == 4).flatten().numpy()
    inputs = _inputs(digits, tiny_trained, forget)
    method = get_unlearner(name, FAST.get(name))
    out = method.unlearn(inputs)
    assert all(torch.isfinite(v).all() for v in out.state_dict().values() if v.is_floating_point())
    assert out is not inputs.model and not out.training
    assert method.report["budget_epochs"] > 0


@pytest.mark.parametrize("name", ["eu", "cf", "scrub", "neggrad_plus", "potion"])
def test_flagging_every_training_point_is_refused_by_those_that_need_a_retain_set(digits, tiny_trained, name):
    inputs = _inputs(digits, tiny_trained, np.arange(len(digits.y_train)))
    with pytest.raises(ValueError, match=f"{name}: every training point was flagged"):
        get_unlearner(name, FAST.get(name)).unlearn(inputs)


@pytest.mark.parametrize(
    "name, settings, message",
    [
        ("ssd", {"alpha": 0.0}, "alpha: 0.0 is not allowed"),
        ("ssd", {"dampening": -1.0}, "dampening: -1.0 is not allowed"),
        ("scrub", {"msteps": 4, "epochs": 3}, "msteps: 4 is not allowed"),
        ("scrub", {"forget_loss": "ce"}, "forget_loss: 'ce' must be one of 'kl', 'ce_kl'"),
        ("badt", {"retain_fraction": 0.0}, "retain_fraction: 0.0 is not allowed"),
        ("potion", {"rho": 1.0}, "rho: 1.0 is not allowed"),
        ("neggrad_plus", {"beta": 1.0}, "beta: 1.0 is not allowed"),
        ("ga", {"lr": 0}, "lr: 0.0 is not allowed"),
        ("ssd", {"lambda": 1.0}, "unknown key(s) ['lambda']"),
    ],
)
def test_settings_are_typed_and_range_checked(name, settings, message):
    with pytest.raises(ValueError) as info:
        get_unlearner(name, settings)
    assert message in str(info.value)
