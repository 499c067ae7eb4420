import numpy as np
import torch

from unpoison.models import build_model
from unpoison.seeding import stage_seed
from unpoison.training import TrainRecipe, train_model
from unpoison.unlearners import UnlearnInputs, get_unlearner

DEV = torch.device("cpu")
RECIPE = TrainRecipe(epochs=2, batch_size=64, lr=0.05, milestones=[], crop_padding=0, flip=False)
SPEC = {"name": "digits_cnn", "num_classes": 10, "in_channels": 1, "options": {"width": 4}}


def _inputs(digits, forget):
    torch.manual_seed(0)
    model = build_model("digits_cnn", 10, 1, {"width": 4})
    train_model(model, digits.x_train, digits.y_train, RECIPE, 0, DEV)
    return UnlearnInputs(model, SPEC, digits.x_train, digits.y_train, forget, RECIPE, 0, DEV)


def test_eu_equals_training_from_scratch_on_the_retain_set(digits):
    forget = np.arange(0, 300, 3)
    inputs = _inputs(digits, forget)
    unlearned = get_unlearner("eu").unlearn(inputs)
    keep = inputs.retain_mask()
    assert int(keep.sum()) == len(digits.y_train) - len(forget) and not keep[forget].any()
    torch.manual_seed(stage_seed(0, "unlearn/eu/init"))
    reference = build_model("digits_cnn", 10, 1, {"width": 4})
    train_model(reference, digits.x_train[keep], digits.y_train[keep], RECIPE, stage_seed(0, "unlearn/eu/order"), DEV)
    for a, b in zip(unlearned.state_dict().values(), reference.state_dict().values()):
        assert torch.equal(a, b)


def test_cf_fine_tunes_a_copy_and_none_returns_the_model(digits):
    inputs = _inputs(digits, np.arange(10))
    before = {k: v.clone() for k, v in inputs.model.state_dict().items()}
    tuned = get_unlearner("cf", {"epochs": 1, "lr": 0.01}).unlearn(inputs)
    assert tuned is not inputs.model
    assert any(not torch.equal(before[k], v) for k, v in tuned.state_dict().items())
    assert all(torch.equal(before[k], v) for k, v in inputs.model.state_dict().items())
    assert get_unlearner("none").unlearn(inputs) is inputs.model
