"""``unpoison-audit``: a planted-poison run through the CLI, its outputs, and every bad-input error.

One small BadNet-poisoned digits model (400 training images, 20 poisons, digits_cnn width 16) is trained once
for the module; the audit reads only what a user would hold (state_dict, ImageFolder tree, query PNGs); the
truth stays in memory here.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

from unpoison.attacks import get_attack
from unpoison.audit import AuditError, AuditSettings
from unpoison.audit.build import build_audit_model
from unpoison.audit.cli import main, resolve_options
from unpoison.audit.inputs import load_training_set
from unpoison.audit.model import InputAdapter, read_state_dict
from unpoison.data import ImageData
from unpoison.models import build_model
from unpoison.queries import select_queries
from unpoison.training import TrainRecipe, train_model

N_TRAIN, N_POISONS, N_B, WIDTH, N_QUERIES = 400, 20, 16, 16, 5


def _png(x: torch.Tensor, path) -> None:
    arr = x.permute(1, 2, 0).numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr).save(path)


@pytest.fixture(scope="module")
def planted(digits, tmp_path_factory):
    """A poisoned model's files (weights, ImageFolder tree, 5 triggered query PNGs) and the kept-aside truth."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("audit")
    data = ImageData(digits.x_train[:N_TRAIN], digits.y_train[:N_TRAIN], digits.x_test, digits.y_test, digits.classes)
    attack = get_attack("badnet", {"count": N_POISONS, "pattern": "checkerboard", "size": 3, "value": 255, "margin": 0})
    poisoned = attack.poison(data, seed=0)
    torch.manual_seed(0)
    net = build_model("digits_cnn", 10, 1, {"width": WIDTH})
    recipe = TrainRecipe(
        epochs=20, batch_size=32, lr=0.05, weight_decay=5e-3, milestones=[14], crop_padding=1, flip=False
    )
    train_model(net, poisoned.x_train, poisoned.y_train, recipe, seed=0, device=torch.device("cpu"))
    torch.save(net.state_dict(), root / "weights.pt")
    names = [f"{int(y)}/{i:04d}.png" for i, y in enumerate(poisoned.y_train)]
    for i, name in enumerate(names):
        _png(poisoned.x_train[i], root / "train" / name)
    queries, _ = select_queries(net, data, attack, poisoned.truth, N_QUERIES, 0, torch.device("cpu"))
    for j in range(N_QUERIES):
        _png(queries["x"][j], root / f"query{j}.png")
    target = poisoned.truth["target"]
    config = {
        "arch": "digits_cnn",
        "model_option": {"width": WIDTH},
        "weights": str(root / "weights.pt"),
        "train": str(root / "train"),
        "n_b": N_B,
        "seed": 0,
        "device": "cpu",
        "sheet_size": 16,
        # one label omitted (the model's prediction), one as an index, one as a class name
        "query": [
            str(root / "query0.png"),
            f"{root / 'query1.png'}:{target}",
            f"{root / 'query2.png'}:{digits.classes[target]}",
        ]
        + [str(root / f"query{j}.png") for j in range(3, N_QUERIES)],
    }
    (root / "audit.yaml").write_text(yaml.safe_dump(config))
    out = root / "out"
    assert main(["--config", str(root / "audit.yaml"), "--out", str(out)]) == 0
    poison_files = {names[i] for i in poisoned.truth["poison_indices"]}
    return {"root": root, "out": out, "poison_files": poison_files, "target": target, "net": net}


def _flagged(out) -> pd.DataFrame:
    return pd.read_csv(out / "flagged.csv", dtype={"file": str, "class": str})


def test_cli_flags_mostly_poisons(planted):
    files = set(_flagged(planted["out"])["file"])
    tp = len(files & planted["poison_files"])
    # base rate 5 %: a detector flagging at random, or every target-label image (~14 %), fails both bounds
    assert tp >= 0.9 * N_POISONS, f"found {tp} of {N_POISONS} poisons"
    assert tp / len(files) >= 0.5, f"precision {tp}/{len(files)}"


def test_outputs_exist_and_agree(planted):
    out, root = planted["out"], planted["root"]
    table = _flagged(out)
    flagged = np.load(out / "flagged.npy")
    assert flagged.dtype == np.int64 and list(flagged) == sorted(flagged)
    assert sorted(table["index"]) == list(flagged) and len(table) == len(flagged) > 0
    train = load_training_set(root / "train")
    for row in table.to_dict("records"):
        assert train.names[row["index"]] == row["file"] and (root / "train" / row["file"]).is_file()
        assert row["file"].split("/")[0] == str(row["label"]) == row["class"]  # folder = label = class name here
        pixels = np.array(Image.open(root / "train" / row["file"]))
        assert np.array_equal(pixels, train.x[row["index"], 0].numpy())
    assert (table["collapse_count"] >= N_B - 1).all() and table["collapse_count"].is_monotonic_decreasing
    scores = torch.load(out / "scores.pt", weights_only=True)
    assert scores["scores"].shape == (N_QUERIES, 1 + N_B, N_TRAIN) and scores["train_files"] == train.names
    summary = json.loads((out / "audit.json").read_text())
    assert summary["n_flagged"] == len(flagged) and summary["n_train"] == N_TRAIN
    assert [q["label"] for q in summary["queries"]] == [planted["target"]] * N_QUERIES
    assert [q["label_source"] for q in summary["queries"]] == ["predicted", "given", "given", "predicted", "predicted"]
    assert all(len(flagged) <= n for n in summary["flagged_per_image"])  # the intersection
    for name in ("top_collapsed.png", "collapse.png", *(f"collapse_q{j}.png" for j in range(2, N_QUERIES + 1))):
        assert (out / name).stat().st_size > 1000
    text = (out / "summary.md").read_text()
    assert f"{len(flagged)} of {N_TRAIN} training images flagged" in text and "not tuned" in text.replace("NOT", "not")
    assert not list(out.glob(".*")), "temporary files left behind"


def test_npz_reads_like_the_image_folder(planted, tmp_path):
    tree = load_training_set(planted["root"] / "train")
    order = np.argsort([int(n.split("/")[1][:-4]) for n in tree.names])  # back to the original index order
    x, y = tree.x[order], tree.y[order]
    np.savez(tmp_path / "t.npz", x_train=x.permute(0, 2, 3, 1).numpy(), y_train=y.numpy())
    npz = load_training_set(tmp_path / "t.npz")
    assert torch.equal(npz.x, x) and torch.equal(npz.y, y) and npz.names[:2] == ["0", "1"]


# ---- bad input: the message names the problem and the fix --------------------------------------------


def _run(planted, capsys, *extra, query=None, weights=None, arch="digits_cnn", train=None):
    root = planted["root"]
    argv = [
        "--arch",
        arch,
        "--weights",
        str(weights or root / "weights.pt"),
        "--train",
        str(train or root / "train"),
        "--query",
        str(query or root / "query0.png"),
        "--out",
        str(root / "bad"),
        "--device",
        "cpu",
    ]
    argv += ["--model-option", f"width={WIDTH}"] if arch == "digits_cnn" else []
    argv += extra  # later options win
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("unpoison-audit: error: ")
    assert not (root / "bad").exists(), "bad input must fail before writing anything"
    return err


def test_missing_files(planted, capsys, tmp_path):
    assert "file not found" in _run(planted, capsys, weights=tmp_path / "nope.pt")
    assert "image not found" in _run(planted, capsys, query=tmp_path / "nope.png")
    assert "not found" in _run(planted, capsys, train=tmp_path / "nope")
    (tmp_path / "empty" / "a").mkdir(parents=True)
    assert "no images found" in _run(planted, capsys, train=tmp_path / "empty")


def test_wrong_state_dict_keys(planted, capsys):
    err = _run(planted, capsys, arch="resnet9")  # another project model: other parameter names
    assert "missing key(s) ['" in err and "unexpected key(s) ['" in err and "Fix: check --arch resnet9" in err
    err = _run(planted, capsys, "--model-option", "width=8")  # the right model at the wrong width
    assert "size mismatch(es): body.0.0.weight (16, 1, 3, 3) in the file, (8, 1, 3, 3) in the model" in err
    assert "missing key" not in err and "--model-option" in err
    assert "unknown key(s) ['depth']" in _run(planted, capsys, "--model-option", "depth=3")


def test_pickled_model_is_refused(planted, capsys, tmp_path):
    torch.save(planted["net"], tmp_path / "whole_model.pt")  # the whole object, not its state_dict
    err = _run(planted, capsys, weights=tmp_path / "whole_model.pt")
    assert "pickled Python objects" in err and "weights_only=True" in err and "torch.save(model.state_dict()" in err
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(AuditError, match="not a readable torch file"):
        read_state_dict(tmp_path / "junk.pt")
    state = planted["net"].state_dict()
    torch.save({**state, "head.bias": torch.full_like(state["head.bias"], float("nan"))}, tmp_path / "nan.pt")
    with pytest.raises(AuditError, match=r"NaN/inf values in 1 tensor\(s\) \['head.bias'\]"):
        read_state_dict(tmp_path / "nan.pt")


def test_query_size_channel_and_label(planted, capsys, tmp_path):
    _png(torch.zeros(1, 16, 16, dtype=torch.uint8), tmp_path / "big.png")
    err = _run(planted, capsys, query=tmp_path / "big.png")
    assert "is 16×16 pixels (H×W) but the training images are 8×8" in err and "resize/crop it to 8×8" in err
    _png(
        torch.randint(0, 255, (3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)),
        tmp_path / "rgb.png",
    )
    err = _run(planted, capsys, query=tmp_path / "rgb.png")
    assert "colour (3-channel) image but the training images are grayscale" in err and "convert('L')" in err
    query = planted["root"] / "query0.png"
    assert "label 12 is out of range; the model has 10 outputs (0..9)" in _run(planted, capsys, query=f"{query}:12")
    assert "must be an output index or a class name" in _run(planted, capsys, query=f"{query}:cat")


def test_training_labels_out_of_range(planted, capsys):
    err = _run(planted, capsys, "--num-classes", "5")
    assert "out of range for a model with 5 outputs" in err and "--num-classes" in err


def test_config_and_settings_errors(planted, tmp_path):
    (tmp_path / "c.yaml").write_text("arch: digits_cnn\nn_bb: 3\n")
    with pytest.raises(AuditError, match=r"unknown key\(s\) \['n_bb'\]; allowed"):
        resolve_options(["--config", str(tmp_path / "c.yaml")])
    (tmp_path / "c.yaml").write_text("n_b: fifty\n")
    with pytest.raises(AuditError, match="n_b: 'fifty' must be an integer"):
        resolve_options(["--config", str(tmp_path / "c.yaml")])
    with pytest.raises(AuditError, match="missing --train, --query, --out"):
        resolve_options(["--arch", "resnet18"])
    (tmp_path / "c.yaml").write_text("n_b: 8\nk: 2\nquery: a.png\narch: x\nweights: w\ntrain: t\n")
    options = resolve_options(["--config", str(tmp_path / "c.yaml"), "--k", "3", "--out", "o"])  # the command line wins
    assert (options["n_b"], options["k"], options["query"], options["tau"]) == (8, 3, ["a.png"], 0.0)
    with pytest.raises(AuditError, match=r"--k 50: must be 0 ≤ k < n_b = 50"):
        AuditSettings(k=50)


def test_every_audit_setting_is_an_option_and_reaches_the_settings(tmp_path):
    """A new AuditSettings field without a CLI/YAML option would silently keep its default: every field is among
    the resolved options, and from_options takes them (lists of augmentations as tuples), ignoring the rest."""
    from dataclasses import fields

    argv = ["--arch", "x", "--train", "t", "--query", "q.png", "--out", "o", "--k", "4", "--augmentations", "affine"]
    options = resolve_options(argv)
    assert {f.name for f in fields(AuditSettings)} <= set(options)
    settings = AuditSettings.from_options(options)
    assert (settings.k, settings.augmentations, settings.n_b) == (4, ("affine",), 50)
    assert AuditSettings.from_options({"tau": -1.0, "arch": "ignored"}) == AuditSettings(tau=-1.0)


def test_torchvision_architecture(tmp_path):
    import torchvision

    torch.manual_seed(0)
    net = torchvision.models.get_model("resnet18", weights=None, num_classes=4)
    torch.save({f"module.{k}": v for k, v in net.state_dict().items()}, tmp_path / "w.pt")  # DataParallel prefix
    x = torch.rand(2, 1, 32, 32)  # grayscale training images reach the 3-channel network expanded
    model, info = build_audit_model("resnet18", tmp_path / "w.pt", 4, x, mean=[0.5], std=[0.25])
    expected = net.eval()((x.expand(-1, 3, -1, -1) - 0.5) / 0.25)
    assert torch.allclose(model(x), expected, atol=1e-5)
    assert info.family == "torchvision" and info.channels == 3 and "0.5" in info.normalisation
    with pytest.raises(AuditError, match=r"size mismatch\(es\): fc.weight \(4, 512\) in the file, \(10, 512\)"):
        build_audit_model("resnet18", tmp_path / "w.pt", 10, x.expand(-1, 3, -1, -1))
    with pytest.raises(AuditError, match="project models normalise their inputs themselves"):
        build_audit_model("digits_cnn", tmp_path / "w.pt", 4, x, mean=[0.5], std=[0.25])
    with pytest.raises(AuditError, match="neither a project model .* nor torchscript"):
        build_audit_model("resnet1000", tmp_path / "w.pt", 4, x)
    with pytest.raises(AuditError, match="--weights is required with --arch resnet18"):
        build_audit_model("resnet18", None, 4, x)
    # the same name with the project's weights (normalize.* buffers) is the project's model
    torch.save(build_model("resnet18", 4, 3, {"width": 8}).state_dict(), tmp_path / "p.pt")
    model, info = build_audit_model("resnet18", tmp_path / "p.pt", 4, torch.rand(2, 3, 32, 32), {"width": 8})
    assert not isinstance(model, InputAdapter) and info.family == "project"


def test_documented_config_is_complete():
    from pathlib import Path

    from unpoison.audit.cli import OPTIONS

    path = Path(__file__).resolve().parents[1] / "examples/audit.yaml"
    assert set(yaml.safe_load(path.read_text())) == set(OPTIONS)  # every option documented, no stale key
    options = resolve_options(["--config", str(path)])
    assert (options["n_b"], options["tau"], options["k"], options["model_option"]) == (50, 0.0, 1, {"width": 32})
