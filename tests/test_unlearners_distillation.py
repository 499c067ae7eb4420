"""SCRUB and Bad Teacher: shuffled loaders, what each step optimises, the random teacher (tiny CPU model)."""

import copy
import io

import numpy as np
import pytest
import torch

import unpoison.unlearners.distillation as distillation
from unpoison.unlearners import UnlearnInputs, get_unlearner
from unpoison.unlearners.finetune import DeviceData, distillation_kl, mean_loss

DEV = torch.device("cpu")


def _inputs(digits, tiny_trained, forget, seed=0, log=None):
    model, spec, recipe = tiny_trained
    return UnlearnInputs(
        copy.deepcopy(model), spec, digits.x_train, digits.y_train, np.asarray(forget), recipe, seed, DEV, log
    )


@pytest.fixture()
def recorded_batches(monkeypatch):
    """Every batch list the distillation unlearners draw, one list per call (= one pass over a set)."""
    calls = []
    real = distillation.index_batches

    def recording(indices, batch_size, generator):
        batches = list(real(indices, batch_size, generator))
        calls.append(batches)
        return iter(batches)

    monkeypatch.setattr(distillation, "index_batches", recording)
    return calls


def _order(batches):
    return torch.cat(batches).tolist()


def test_scrub_shuffles_forget_and_retain_sets_every_epoch(digits, tiny_trained, recorded_batches):
    forget = np.arange(0, 300, 5)  # 60 points: 2 forget batches of 32
    scrub = get_unlearner("scrub", {"epochs": 3, "msteps": 2})
    scrub.unlearn(_inputs(digits, tiny_trained, forget))
    # epoch 1: forget, retain; epoch 2: forget, retain; epoch 3: retain only (msteps = 2)
    assert len(recorded_batches) == 5
    f1, r1, f2, r2, r3 = (_order(b) for b in recorded_batches)
    assert sorted(f1) == sorted(f2) == forget.tolist()
    assert f1 != sorted(f1) and f1 != f2
    assert sorted(r1) == sorted(r2) == sorted(r3) and len(r1) == len(digits.y_train) - len(forget)
    assert r1 != sorted(r1) and r1 != r2 and r2 != r3
    assert [len(b) for b in recorded_batches[0]] == [32, 28] and len(recorded_batches[1][0]) == 128


def test_badt_shuffles_forget_and_retain_together_every_epoch(digits, tiny_trained, recorded_batches):
    forget = np.arange(0, 300, 5)
    get_unlearner("badt", {"epochs": 2}).unlearn(_inputs(digits, tiny_trained, forget))
    assert len(recorded_batches) == 2
    e1, e2 = (_order(b) for b in recorded_batches)
    assert sorted(e1) == sorted(e2) == list(range(len(digits.y_train)))  # forget + the whole retain set
    assert e1 != e2 and e1 != sorted(e1)
    first = set(recorded_batches[0][0].tolist())
    assert first & set(forget.tolist()) and first - set(forget.tolist())  # a batch mixes forget and retain


def test_badt_retain_fraction_subsamples_the_retain_set(digits, tiny_trained, recorded_batches):
    forget = np.arange(40)
    get_unlearner("badt", {"retain_fraction": 0.3}).unlearn(_inputs(digits, tiny_trained, forget))
    seen = _order(recorded_batches[0])
    assert set(forget.tolist()) <= set(seen) and len(seen) == 40 + round(0.3 * (len(digits.y_train) - 40))


def test_badt_random_teacher_is_seeded_and_untrained(digits, tiny_trained):
    badt = get_unlearner("badt")
    inputs = _inputs(digits, tiny_trained, np.arange(10))
    state = torch.random.get_rng_state()
    a, b = badt.random_teacher(inputs), badt.random_teacher(inputs)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global stream is left alone
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    other = badt.random_teacher(_inputs(digits, tiny_trained, np.arange(10), seed=1))
    assert not torch.equal(a.head.weight, other.head.weight)
    assert not torch.equal(a.head.weight, tiny_trained[0].head.weight)


def test_badt_moves_forget_points_towards_the_random_teacher(digits, tiny_trained):
    forget = torch.nonzero(digits.y_train == 2).flatten().numpy()
    inputs = _inputs(digits, tiny_trained, forget)
    badt = get_unlearner("badt", {"epochs": 3, "lr": 1e-3})
    out = badt.unlearn(inputs)
    bad = badt.random_teacher(inputs)
    data = DeviceData(inputs)
    x_f, _ = data.batch(torch.as_tensor(forget))
    with torch.no_grad():
        before = float(distillation_kl(tiny_trained[0](x_f), bad(x_f), 1.0))
        after = float(distillation_kl(out(x_f), bad(x_f), 1.0))
    assert after < before


def test_scrub_max_steps_raise_the_divergence_on_the_forget_set(digits, tiny_trained):
    forget = np.arange(0, 400, 4)
    inputs = _inputs(digits, tiny_trained, forget)
    # max-epochs only (the min-epoch on the retain set with lr 0 changes nothing)
    out = get_unlearner("scrub", {"epochs": 1, "msteps": 1, "lr": 0.05, "momentum": 0.0}).unlearn(inputs)
    data = DeviceData(inputs)
    x_f, _ = data.batch(torch.as_tensor(forget))
    with torch.no_grad():
        kl = float(distillation_kl(out.eval()(x_f), tiny_trained[0](x_f), 4.0))
    assert kl > 1e-3
    # and without max-epochs SCRUB fits the retain set while staying near the teacher
    plain = get_unlearner("scrub", {"epochs": 2, "msteps": 0, "lr": 0.01}).unlearn(
        _inputs(digits, tiny_trained, forget)
    )
    retain = inputs.retain_indices()
    assert mean_loss(plain, data, retain) < mean_loss(tiny_trained[0], data, retain)


def test_scrub_logs_each_epoch(digits, tiny_trained):
    log = io.StringIO()
    scrub = get_unlearner("scrub", {"epochs": 2, "msteps": 1})
    scrub.unlearn(_inputs(digits, tiny_trained, np.arange(50), log=log))
    lines = [line for line in log.getvalue().splitlines() if line.startswith("scrub: epoch")]
    assert len(lines) == 2 and "max-step" in lines[0] and "max-step" not in lines[1]
    n, f = len(digits.y_train), 50
    assert scrub.report["budget_epochs"] == pytest.approx((1 * f + 2 * (n - f)) * 4 / 3 / n)
