"""The audit on a model from the user's own code: ``--arch module:Class`` / ``file.py:Class``, TorchScript,
``audit(model=..., train=..., queries=...)`` with Python objects, and the errors that name the fix (bad
imports, no trackable layer, wrong input sizes, a stage failing inside kronfluence).

The user's code is a module file written into a temporary directory; 64 digits images, n_b = 3.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from unpoison.audit import AuditError, AuditSettings, audit
from unpoison.audit.api import check_geometry, prepare_model
from unpoison.audit.build import build_audit_model
from unpoison.audit.cli import main
from unpoison.audit.inputs import TrainingSet
from unpoison.audit.objects import training_set_from
from unpoison.audit.runlog import RunLog
from unpoison.influence import build_probe_set

N, N_B, MODULE = 64, 3, "audit_user_models"

USER_CODE = """
import torch
from torch import nn


class SmallNet(nn.Module):
    def __init__(self, num_classes=10, width=4):
        super().__init__()
        self.conv = nn.Conv2d(1, width, 3, padding=1)
        self.fc = nn.Linear(width * 16, num_classes)

    def forward(self, x):
        return self.fc(nn.functional.max_pool2d(torch.relu(self.conv(x)), 2).flatten(1))


def build(width=4):
    return SmallNet(width=width)


class NoLayers(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(num_classes, 64))

    def forward(self, x):
        return nn.functional.linear(x.flatten(1), self.w)


class Net16(SmallNet):
    def __init__(self, num_classes=10):
        super().__init__(num_classes, 4)
        self.fc = nn.Linear(4 * 64, num_classes)


class GradFails(SmallNet):
    def forward(self, x):
        if torch.is_grad_enabled():
            raise RuntimeError("boom while computing gradients")
        return super().forward(x)


NOT_A_MODEL = 3


def returns_dict():
    return {"a": 1}
"""


@pytest.fixture(scope="module")
def user(digits, tmp_path_factory):
    """The user's files: a module defining the model, its trained weights, the training .npz, a query PNG."""
    import sys

    root = tmp_path_factory.mktemp("user")
    (root / f"{MODULE}.py").write_text(USER_CODE)
    sys.path.insert(0, str(root))
    import audit_user_models as code

    x, y = digits.x_train[:N], digits.y_train[:N]
    torch.manual_seed(0)
    net = code.SmallNet()
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    for _ in range(40):  # full-batch steps: a model that fits its training set
        opt.zero_grad()
        nn.functional.cross_entropy(net(x.float() / 255), y).backward()
        opt.step()
    net.eval()
    torch.save(net.state_dict(), root / "w.pt")
    np.savez(root / "train.npz", x_train=x.permute(0, 2, 3, 1).numpy(), y_train=y.numpy())
    query = digits.x_test[0]
    Image.fromarray(query[0].numpy()).save(root / "q.png")
    yield {"root": root, "code": code, "net": net, "x": x, "y": y, "query": query}
    sys.path.remove(str(root))


def _argv(user, arch, *extra, out="out"):
    root = user["root"]
    return [
        "--arch",
        arch,
        "--weights",
        str(root / "w.pt"),
        "--train",
        str(root / "train.npz"),
        "--query",
        str(root / "q.png"),
        "--out",
        str(root / out),
        "--n-b",
        str(N_B),
        "--device",
        "cpu",
        "--sheet-size",
        "4",
        *extra,
    ]


class FloatDataset(torch.utils.data.Dataset):
    """(float [0, 1] image, int label) items, as a torchvision dataset with ToTensor() gives them."""

    def __init__(self, x, y, shift=0.0, noisy=False):
        self.x, self.y, self.shift, self.noisy = x, y, shift, noisy

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        img = self.x[i].float() / 255 + self.shift
        return (img * (1 - 0.01 * torch.rand_like(img)) if self.noisy else img), int(self.y[i])


def test_custom_class_cli_and_objects_agree(user, monkeypatch):
    monkeypatch.chdir(user["root"])  # MODULE:NAME is searched in the current directory first
    assert main(_argv(user, f"{MODULE}:SmallNet", "--model-option", "width=4")) == 0
    out = user["root"] / "out"
    report = json.loads((out / "audit.json").read_text())["inputs"]
    assert report["family"] == "import" and report["options"] == {"width": 4, "num_classes": 10}
    assert [m["name"] for m in report["tracked"]] == ["conv", "fc"]
    assert "modules EK-FAC tracks (2: 1 Conv2d, 1 Linear" in (out / "summary.md").read_text()
    assert "fitting EK-FAC factors" in (out / "audit.log").read_text()
    cli = torch.load(out / "scores.pt", weights_only=True)["scores"]
    settings = AuditSettings(n_b=N_B, device="cpu")
    before = {k: v.clone() for k, v in user["net"].state_dict().items()}
    # the same audit from objects: the model, (x, y) tensors and the query as a tensor; then a Dataset of floats
    objects = audit(
        user["net"],
        (user["x"], user["y"]),
        [user["query"]],
        user["root"] / "o1",
        settings=settings,
        sheet_size=4,
        log=None,
    )
    floats = audit(
        user["net"],
        FloatDataset(user["x"], user["y"]),
        user["query"][None].float() / 255,
        user["root"] / "o2",
        settings=settings,
        sheet_size=4,
        log=None,
    )
    assert torch.allclose(objects.scores, cli, rtol=1e-5, atol=1e-4)
    assert torch.allclose(floats.scores, cli, rtol=1e-4, atol=1e-3)
    assert np.array_equal(objects.flagged, np.load(out / "flagged.npy"))
    assert json.loads((user["root"] / "o1" / "audit.json").read_text())["inputs"]["family"] == "object"
    after = user["net"].state_dict()  # the caller's model is left as it was
    assert all(torch.equal(v, after[k]) for k, v in before.items())
    assert all(p.requires_grad for p in user["net"].parameters())


def test_file_path_and_factory_build_the_same_model(user):
    sample = user["x"][:2].float() / 255
    for arch in (f"{user['root'] / MODULE}.py:SmallNet", f"{user['root'] / MODULE}.py:build"):
        model, info = build_audit_model(arch, user["root"] / "w.pt", 10, sample)
        assert torch.equal(model(sample), user["net"](sample)) and info.family == "import"


@pytest.mark.parametrize(
    "arch, extra, message",
    [
        ("nosuch_pkg_q.models:Net", [], "module 'nosuch_pkg_q.models' not found"),
        (f"{MODULE}:Nope", [], "has no attribute 'Nope'. It defines these model classes and functions: ['GradFails'"),
        (f"{MODULE}:SmallNet", ["--model-option", "depth=2"], "failed with TypeError"),
        (f"{MODULE}:NOT_A_MODEL", [], "is a int, not a class or function"),
        (f"{MODULE}:returns_dict", [], "returned a dict, not a torch.nn.Module"),
        ("missing/net.py:Net", [], "file 'missing/net.py' not found"),
        (f"{MODULE}:", [], "expected MODULE:NAME"),
        (f"{MODULE}:NoLayers", ["no weights"], "no nn.Linear or nn.Conv2d module"),
    ],
)
def test_bad_import_paths_name_the_fix(user, monkeypatch, capsys, arch, extra, message):
    monkeypatch.chdir(user["root"])
    argv = _argv(user, arch, *extra, out="bad")
    if "no weights" in argv:  # the model as its constructor builds it
        argv = argv[:2] + argv[4:-1]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("unpoison-audit: error: ") and message in err and "Fix" in err, err
    assert not (user["root"] / "bad").exists()


def test_import_errors_inside_the_users_module(user, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "raises_mod.py").write_text("raise ValueError('bad config value')\n")
    (tmp_path / "needs_dep.py").write_text("import nosuchdep_abc\n")
    with pytest.raises(AuditError, match="importing 'raises_mod' raised ValueError: bad config value. Fix"):
        build_audit_model("raises_mod:Net", None, 10, torch.rand(2, 1, 8, 8))
    with pytest.raises(AuditError, match="it imports 'nosuchdep_abc', which is not installed. Fix: install"):
        build_audit_model("needs_dep.py:Net", None, 10, torch.rand(2, 1, 8, 8))


def test_wrong_input_size_names_the_size_and_the_fix(user):
    train = TrainingSet(user["x"], user["y"], [str(i) for i in range(N)], [str(i) for i in range(10)], "tensors", "t")
    net16 = user["code"].Net16()
    with pytest.raises(AuditError, match=r"it expects 16×16 images, given 8×8\. Fix: .* --input-size 16 16"):
        prepare_model(net16, train, 10, None, None, None, None, None, RunLog(None))
    model, info = prepare_model(net16, train, 10, None, None, None, None, (16, 16), RunLog(None))
    x = user["x"][:3].float() / 255
    resized = nn.functional.interpolate(x, size=(16, 16), mode="bilinear", antialias=True)
    assert info.input_size == (16, 16) and torch.allclose(model(x), net16(resized))
    with pytest.raises(AuditError, match=r"query\[0\] is 16×16 pixels \(H×W\) but the training images are 8×8"):
        audit(user["net"], (user["x"], user["y"]), [torch.zeros(1, 16, 16)], user["root"] / "bad", log=None)


def test_stage_failure_is_one_line_with_the_traceback_in_the_log(user, monkeypatch, capsys):
    monkeypatch.chdir(user["root"])
    assert main(_argv(user, f"{MODULE}:GradFails", out="failed")) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("unpoison-audit: error: stage 'factors: cost estimate'")  # its timing pass runs first
    assert "boom while computing gradients. Try: " in err and "audit.log" in err
    log = (user["root"] / "failed" / "audit.log").read_text()
    assert "Traceback (most recent call last)" in log and "fitting EK-FAC factors" in log


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit.script/save are deprecated in torch 2.14
def test_torchscript_is_converted_to_hookable_layers(user, tmp_path):
    torch.jit.save(torch.jit.script(user["net"]), tmp_path / "net.ts")
    sample = user["x"][:4].float() / 255
    model, info = build_audit_model("torchscript", tmp_path / "net.ts", 10, sample)
    assert torch.allclose(model(sample), user["net"](sample), atol=1e-6)
    train = TrainingSet(user["x"], user["y"], [str(i) for i in range(N)], [str(i) for i in range(10)], "tensors", "t")
    _, info = prepare_model("torchscript", train, 10, tmp_path / "net.ts", None, None, None, None, RunLog(None))
    assert [m["name"] for m in info.tracked] == ["conv", "fc"] and info.family == "torchscript"
    with pytest.raises(AuditError, match="not a TorchScript file"):
        build_audit_model("torchscript", user["root"] / "w.pt", 10, sample)


def test_objects_are_checked(user):
    with pytest.raises(AuditError, match=r"outside \[0, 1\]: the images look normalised. Fix: .* mean=..., std="):
        training_set_from(FloatDataset(user["x"], user["y"], shift=-0.5))
    with pytest.raises(AuditError, match="different image each time item 0 is read"):
        training_set_from(FloatDataset(user["x"], user["y"], noisy=True))
    with pytest.raises(AuditError, match="not a training set"):
        training_set_from(42)
    data = training_set_from(FloatDataset(user["x"], user["y"]))
    assert data.x.dtype == torch.float32 and data.kind == "dataset" and torch.equal(data.y, user["y"])


def test_augmentation_families_can_be_chosen(user):
    train = training_set_from((user["x"], user["y"]))
    with pytest.raises(AuditError, match=r"--augmentations \['color_switch'\]: not a family for these 1-channel"):
        check_geometry(train, None, ["hflip", "color_switch"])
    x, y = user["x"][:2], user["y"][:2]
    chosen = build_probe_set(x, y, 10, 6, 0, ("both",), families=("hflip", "invert"))
    assert {a for row in chosen.augmentations for a in row} <= {"hflip", "invert"}
    default, explicit = build_probe_set(x, y, 10, 6, 0), build_probe_set(x, y, 10, 6, 0, families=None)
    assert torch.equal(default.images, explicit.images)


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_weights_with_a_prefix_or_in_torchscript(user, tmp_path):
    sample = user["x"][:2].float() / 255
    torch.save({"state_dict": {f"model.{k}": v for k, v in user["net"].state_dict().items()}}, tmp_path / "l.ckpt")
    model, info = build_audit_model(f"{user['root'] / MODULE}.py:SmallNet", tmp_path / "l.ckpt", 10, sample)
    assert torch.equal(model(sample), user["net"](sample)) and "removed the prefix 'model.'" in info.notes[0]
    torch.jit.save(torch.jit.script(user["net"]), tmp_path / "net.ts")
    with pytest.raises(AuditError, match="is a TorchScript file: pass --arch torchscript"):
        build_audit_model(f"{user['root'] / MODULE}.py:SmallNet", tmp_path / "net.ts", 10, sample)


def test_an_influence_stage_error_keeps_its_stage_module_and_hint(tmp_path):
    from unpoison.audit.runlog import AuditStageError, stage
    from unpoison.influence import InfluenceStageError

    log = RunLog(None)
    log.open(tmp_path)
    with pytest.raises(AuditStageError) as caught:
        with stage("factors", log):
            try:
                raise ValueError("not positive definite")
            except ValueError as err:
                raise InfluenceStageError("eigendecomposition", err, module="net.layer4.0.conv2") from err
    error = caught.value
    assert (error.stage, error.module) == ("factors: eigendecomposition", "net.layer4.0.conv2")
    assert str(error).startswith(
        "stage 'factors: eigendecomposition', module 'net.layer4.0.conv2' failed with "
        "ValueError: not positive definite. Try: the layer's covariance"
    )
    assert "ValueError: not positive definite" in (tmp_path / "audit.log").read_text()
