"""Shared fixtures: tiny real data (digits) and tiny models, fixed seeds, CPU only."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unpoison.data import ImageData, load_dataset


@pytest.fixture(autouse=True)
def _single_thread():
    torch.set_num_threads(1)
    yield


@pytest.fixture(scope="session")
def digits() -> ImageData:
    return load_dataset({"source": "sklearn_digits", "test_fraction": 0.2, "split_seed": 0})


@pytest.fixture()
def random_data() -> ImageData:
    """Random 3-channel 16×16 images over 4 classes (shape-level tests)."""
    g = torch.Generator().manual_seed(0)
    return ImageData(
        torch.randint(0, 256, (64, 3, 16, 16), dtype=torch.uint8, generator=g),
        torch.arange(64) % 4,
        torch.randint(0, 256, (16, 3, 16, 16), dtype=torch.uint8, generator=g),
        torch.arange(16) % 4,
        ["a", "b", "c", "d"],
    )


def _write_npz(path, n_train=40, n_test=10, shape=(8, 8, 3), classes=4, **drop) -> None:
    """A dataset .npz in the documented format (uint8 NHWC images, integer labels)."""
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, (n_train, *shape), dtype=np.uint8),
        "y_train": np.arange(n_train) % classes,
        "x_test": rng.integers(0, 256, (n_test, *shape), dtype=np.uint8),
        "y_test": np.arange(n_test) % classes,
        "classes": np.array([f"c{i}" for i in range(classes)]),
    }
    for key in drop:
        arrays.pop(key)
    np.savez(path, **arrays)


@pytest.fixture()
def write_npz():
    """Function writing a small dataset .npz: ``write_npz(path, **options)``."""
    return _write_npz


@pytest.fixture(scope="session")
def tiny_trained(digits):
    """(model, spec, recipe): a width-4 digits_cnn trained 2 epochs on the digits training set (seed 0).
    Tests must deep-copy the model before changing it."""
    from unpoison.models import build_model
    from unpoison.training import TrainRecipe, train_model

    torch.set_num_threads(1)
    recipe = TrainRecipe(epochs=2, batch_size=64, lr=0.05, milestones=[], crop_padding=0, flip=False)
    spec = {"name": "digits_cnn", "num_classes": 10, "in_channels": 1, "options": {"width": 4}}
    torch.manual_seed(0)
    model = build_model("digits_cnn", 10, 1, {"width": 4})
    train_model(model, digits.x_train, digits.y_train, recipe, 0, torch.device("cpu"))
    return model.eval(), spec, recipe


@pytest.hookimpl(trylast=True)  # after -k / -m deselection
def pytest_collection_modifyitems(session, config, items):
    """Start the real SLURM cluster test's run in the background when its tests are selected and required, so
    that it overlaps the rest of the suite (tests/test_slurm.py, BackgroundRun)."""
    for item in items:
        module = getattr(item, "module", None)
        start = getattr(module, "start_background_run", None)
        if start and getattr(module, "REQUIRED", False) and "runs" in getattr(item, "fixturenames", ()):
            import tempfile
            from pathlib import Path

            start(Path(tempfile.mkdtemp(prefix="unpoison-slurm-test-")))
            return
