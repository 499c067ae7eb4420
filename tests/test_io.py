"""Artifact I/O: unreadable artifacts name themselves and their rule; artifacts follow the umask."""

import os
import re
import stat

import numpy as np
import pytest
import torch

from unpoison.data import TensorDataset01
from unpoison.influence import FactorSettings, fit_factors
from unpoison.io import UnreadableArtifactError, current_umask, load_torch, save_json, save_npy, save_torch
from unpoison.models import build_model, load_checkpoint, save_checkpoint
from unpoison.stages.train import model_spec

SPEC = {"name": "digits_cnn", "num_classes": 10, "in_channels": 1, "options": {"width": 4}}


def _truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_damaged_model_checkpoint_names_the_file_and_train_model(tmp_path, damage):
    path = tmp_path / "results/digits/badnet/s0/model.pt"
    save_checkpoint(str(path), build_model("digits_cnn", 10, 1, {"width": 4}), SPEC)
    load_checkpoint(str(path))  # intact: loads
    if damage == "truncated":
        _truncate(path)
    else:
        path.write_bytes(b"" if damage == "empty" else b"\x00garbage" * 50)
    with pytest.raises(UnreadableArtifactError) as err:
        load_checkpoint(str(path))
    msg = str(err.value)
    assert msg.startswith(f"{path} is unreadable (truncated or not a torch file")
    assert msg.endswith("delete it and re-run; it is made by rule train_model")


@pytest.mark.parametrize(
    "relative, rule",
    [
        ("results/digits/clean.pt", "prepare_dataset"),
        ("results/digits/badnet/s0/poisoned.pt", "poison_dataset"),
        ("results/digits/badnet/s0/queries.pt", "select_queries"),
        ("results/digits/badnet/s0/scores/both.pt", "score_probes"),
        ("results/digits/badnet/s0/unlearned/ekfac/eu.pt", "unlearn"),
        ("results/digits/badnet/s0/unlearned/ekfac/model.pt", "unlearn"),  # an unlearner called "model"
    ],
)
def test_truncated_artifact_names_the_rule_that_makes_it(tmp_path, relative, rule):
    path = tmp_path / relative
    save_torch({"x": torch.arange(4096)}, path)
    _truncate(path)
    with pytest.raises(UnreadableArtifactError, match=re.escape(str(path)) + r".*it is made by rule " + rule + "$"):
        load_torch(path)
    with pytest.raises(UnreadableArtifactError, match=f"rule {rule}$"):
        load_torch(path, mmap=True)


def test_unknown_artifact_and_missing_file(tmp_path):
    path = tmp_path / "other.pt"
    path.write_bytes(b"junk")
    with pytest.raises(UnreadableArtifactError, match=r"other.pt is unreadable .*delete it and re-run$"):
        load_torch(path)
    with pytest.raises(FileNotFoundError):
        load_torch(tmp_path / "missing.pt")


def test_torch_file_that_is_not_a_checkpoint_is_named(tmp_path):
    path = tmp_path / "model.pt"
    save_torch({"weights": torch.zeros(3)}, path)
    with pytest.raises(UnreadableArtifactError, match="not a checkpoint.*rule train_model"):
        load_checkpoint(str(path))


def test_model_spec_reads_a_damaged_clean_pt_with_the_rule_named(tmp_path):
    clean = tmp_path / "clean.pt"
    save_torch({"x_train": torch.zeros((2, 1, 8, 8), dtype=torch.uint8), "classes": ["a", "b"]}, clean)
    assert model_spec({"name": "digits_cnn", "width": 4}, str(clean))["num_classes"] == 2
    _truncate(clean)
    with pytest.raises(UnreadableArtifactError, match="rule prepare_dataset"):
        model_spec({"name": "digits_cnn"}, str(clean))


@pytest.fixture(params=[0o022, 0o027])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_atomic_writes_follow_the_umask(tmp_path, umask):
    assert current_umask() == umask
    save_torch({"x": torch.zeros(2)}, tmp_path / "a.pt")
    save_json({"a": 1}, tmp_path / "a.json")
    save_npy(np.arange(3), tmp_path / "a.npy")
    files = 0o644 if umask == 0o022 else 0o640
    assert {p.name: _mode(p) for p in tmp_path.iterdir()} == {"a.pt": files, "a.json": files, "a.npy": files}


def test_factor_directory_follows_the_umask(tmp_path, umask):
    x = torch.randint(0, 256, (32, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = build_model("digits_cnn", 10, 1, {"width": 4}).eval()
    out = tmp_path / "ekfac"
    fit_factors(
        model, TensorDataset01(x, torch.arange(32) % 10), out, FactorSettings(batch_size=32), torch.device("cpu")
    )
    assert _mode(out) == (0o755 if umask == 0o022 else 0o750)
    modes = {p.name: _mode(p) for p in out.iterdir()}
    assert "lambda_matrix.safetensors" in modes  # safetensors alone would write these 0600
    assert set(modes.values()) == {0o644 if umask == 0o022 else 0o640}
