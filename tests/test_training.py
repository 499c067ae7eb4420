import torch

from unpoison.augment import random_crop_flip
from unpoison.models import MODELS, build_model, load_checkpoint, save_checkpoint
from unpoison.training import TrainRecipe, accuracy, train_model

DEV = torch.device("cpu")


def test_crop_flip_off_is_identity_and_flip_mirrors():
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.uint8).reshape(2, 1, 4, 4)
    assert torch.equal(random_crop_flip(x, 0, False), x)
    g = torch.Generator().manual_seed(0)
    flipped = random_crop_flip(x, 0, True, g)
    for i in range(2):
        assert torch.equal(flipped[i], x[i]) or torch.equal(flipped[i], x[i].flip(-1))


def test_crop_shifts_content_with_zero_fill():
    x = torch.ones((200, 1, 5, 5), dtype=torch.uint8)
    out = random_crop_flip(x, 2, False, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    zeros = (out == 0).flatten(1).sum(1)
    assert zeros.max() > 0 and (zeros == 0).any()  # some shifted (zero border), some not
    assert int(zeros.max()) <= 25 - 9  # a shift of at most 2 keeps a 3×3 core


def test_training_learns_digits_and_is_deterministic(digits):
    recipe = TrainRecipe(epochs=5, batch_size=64, lr=0.05, milestones=[4], crop_padding=1, flip=False)
    models = []
    for _ in range(2):
        torch.manual_seed(0)
        m = build_model("digits_cnn", 10, 1, {"width": 8})
        train_model(m, digits.x_train, digits.y_train, recipe, seed=0, device=DEV)
        models.append(m)
    assert accuracy(models[0], digits.x_test, digits.y_test, DEV) > 0.8
    for a, b in zip(models[0].state_dict().values(), models[1].state_dict().values()):
        assert torch.equal(a, b)


def test_every_model_runs_and_checkpoint_roundtrips(tmp_path):
    for name, (c, size) in {
        "digits_cnn": (1, 8),
        "resnet9": (3, 16),
        "resnet18_cifar": (3, 16),
        "resnet18": (3, 32),
    }.items():
        assert name in MODELS
        m = build_model(name, 7, c, {"width": 8}).eval()
        x = torch.rand(2, c, size, size)
        path = tmp_path / f"{name}.pt"
        spec = {"name": name, "num_classes": 7, "in_channels": c, "options": {"width": 8}}
        save_checkpoint(str(path), m, spec)
        loaded, got = load_checkpoint(str(path))
        assert got == spec
        torch.testing.assert_close(loaded(x), m(x))
        assert m.features(x).ndim == 2


def test_amp_and_channels_last_paths_train(digits):
    """The GPU switches (bf16 autocast, channels_last) run through the same loop; on CPU autocast is bf16 too."""
    recipe = TrainRecipe(
        epochs=2, batch_size=64, lr=0.05, milestones=[], crop_padding=1, flip=False, amp="bf16", channels_last=True
    )
    torch.manual_seed(0)
    m = build_model("digits_cnn", 10, 1, {"width": 8})
    out = train_model(m, digits.x_train, digits.y_train, recipe, seed=0, device=DEV)
    assert out["loss_per_epoch"][1] < out["loss_per_epoch"][0]
    assert next(m.parameters()).dtype == torch.float32  # autocast keeps fp32 master weights
    assert accuracy(m, digits.x_test, digits.y_test, DEV) > 0.5


def test_device_resolution():
    import pytest

    from unpoison.device import autocast_dtype, resolve_device

    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")
    with pytest.raises(ValueError, match="not one of"):
        resolve_device("tpu")
    assert autocast_dtype("bf16") is torch.bfloat16 and autocast_dtype("none") is None
