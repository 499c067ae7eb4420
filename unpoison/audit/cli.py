"""``unpoison-audit`` (also ``python -m unpoison.audit``): command-line options and an optional YAML file.

Every option can also be a key of the YAML file given with ``--config`` (the option's name with ``_`` for
``-``; ``model_option`` is a mapping, ``query`` a list); options on the command line override the file.
``examples/audit.yaml`` documents every key.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from unpoison.audit.api import audit
from unpoison.audit.core import AuditSettings
from unpoison.audit.inputs import AuditError, first_line
from unpoison.audit.runlog import AuditStageError
from unpoison.data import DatasetError
from unpoison.influence.settings import Cap
from unpoison.params import ParamError, coerce_value

# name → (type, default, help); the one list of options (argparse and the YAML keys are built from it)
OPTIONS: dict[str, tuple[Any, Any, str]] = {
    "arch": (
        str,
        None,
        "the model: a project model (digits_cnn, resnet9, resnet18_cifar, resnet18), a torchvision "
        "name (torchvision.models.list_models(), e.g. resnet18), your own class or function as "
        "MODULE:NAME (e.g. mylab.models:PreActResNet18) or FILE.py:NAME (e.g. train.py:Net), built "
        "with --model-option, or torchscript (--weights is then the torch.jit.save file)",
    ),
    "weights": (
        str,
        None,
        "the model's plain state_dict file (torch.save(model.state_dict(), path)); with --arch "
        "torchscript the TorchScript file; optional with MODULE:NAME (a function that loads them)",
    ),
    "train": (str, None, "training set: ImageFolder root (root/<class>/<image>) or .npz with x_train, y_train"),
    "query": (
        list[str],
        None,
        "a suspicious image, PATH[:LABEL] (label = output index or class name; omitted = "
        "the model's prediction); repeat for several images of one attack",
    ),
    "out": (str, None, "output directory"),
    "num_classes": (int | None, None, "the model's outputs (default: the training set's classes)"),
    "model_option": (
        dict,
        {},
        "a keyword argument of the architecture KEY=VALUE (e.g. width=32; for MODULE:NAME "
        "the constructor's arguments; num_classes is passed when it takes one); repeatable",
    ),
    "mean": (
        list[float] | None,
        None,
        "per-channel mean your model normalised its [0, 1] inputs with (e.g. 0.485 "
        "0.456 0.406), applied by the audit; project models normalise themselves",
    ),
    "std": (list[float] | None, None, "per-channel std (e.g. 0.229 0.224 0.225)"),
    "input_size": (
        list[int] | None,
        None,
        "H W the model takes when it differs from the images' size: the "
        "[0, 1] images are resized (bilinear) before the model",
    ),
    "augmentations": (
        list[str] | None,
        None,
        "augmentation families the transforms draw from (default all: "
        "affine color_jitter color_switch elastic gaussian_blur hflip invert; "
        "color_switch needs RGB)",
    ),
    "n_b": (int, 50, "transformed copies per suspicious image"),
    "tau": (float, 0.0, "Δ < tau counts as a collapse"),
    "k": (int, 1, "flag when ≥ n_b − k transforms collapse"),
    "seed": (int, 0, "seed of the Fisher labels and the transforms"),
    "device": (str, "auto", "auto (CUDA when present), cpu, cuda or cuda:N"),
    "factor_batch_size": (int, 128, "batch size while fitting EK-FAC factors"),
    "score_batch_size": (int, 128, "training batch size while scoring"),
    "query_batch_size": (int, 64, "query gradients computed together (all are scored in one pass)"),
    "query_gradient_low_rank": (
        int | None,
        None,
        "store the query gradients at this rank (kronfluence's "
        "low-rank approximation; less memory for large models; default "
        "exact)",
    ),
    "covariance_max_examples": (
        Cap,
        "auto",
        "fit the covariances on this many random training images; auto = a cap "
        "when the estimated cost exceeds 2 training epochs; all = every image",
    ),
    "lambda_max_examples": (
        Cap,
        "auto",
        "fit the eigenvalue corrections on this many random training images; auto "
        "= a cap when the estimated cost exceeds 2 training epochs (the stage that "
        "dominates on wide conv layers); all = every image",
    ),
    "sheet_size": (int, 32, "images on the contact sheet"),
}
REQUIRED = ("arch", "train", "query", "out")


def _key_value(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE (e.g. width=32)")
    key, value = text.split("=", 1)
    return key.strip(), yaml.safe_load(value)


def parse_cap(text: str) -> int | str | None:
    """A stage cap on the command line: a count, ``auto`` or ``all``."""
    if text in ("auto",):
        return "auto"
    if text.lower() in ("all", "null", "none"):
        return None
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise argparse.ArgumentTypeError(f"{text!r}: give a number of images ≥ 1, auto or all")


def parser() -> argparse.ArgumentParser:
    """The argument parser (every option defaults to 'not given', so a YAML file can supply it)."""
    p = argparse.ArgumentParser(
        prog="unpoison-audit",
        description="Audit your own model with Δ-Influence: which training images make it give the suspicious "
        "image(s) their label? Writes flagged.csv/.npy, a contact sheet, the collapse plot and summary.md.",
    )
    p.add_argument("--config", help="YAML file with any of the options below (command-line options override it)")
    for name, (kind, default, text) in OPTIONS.items():
        flag = "--" + name.replace("_", "-")
        helptext = text + (f" (default {default})" if default not in (None, {}) else "")
        kw: dict[str, Any] = {"dest": name, "default": argparse.SUPPRESS, "help": helptext}
        if name == "query":
            p.add_argument(flag, action="append", metavar="PATH[:LABEL]", **kw)
        elif name == "model_option":
            p.add_argument(flag, action="append", type=_key_value, metavar="KEY=VALUE", **kw)
        elif name in ("mean", "std"):
            p.add_argument(flag, nargs="+", type=float, **kw)
        elif name == "input_size":
            p.add_argument(flag, nargs=2, type=int, metavar=("H", "W"), **kw)
        elif name == "augmentations":
            p.add_argument(flag, nargs="+", metavar="FAMILY", **kw)
        elif kind is Cap:
            p.add_argument(flag, type=parse_cap, metavar="N|auto|all", **kw)
        else:
            base = {int | None: int, list[str]: str}.get(kind, kind)
            p.add_argument(flag, type=base, **kw)
    return p


def read_config(path: str) -> dict[str, Any]:
    """The options in a YAML file (unknown keys and wrong types rejected, naming the key)."""
    p = Path(path)
    if not p.is_file():
        raise AuditError(f"--config {path!r}: file not found")
    data = yaml.safe_load(p.read_text()) or {}
    if not isinstance(data, dict):
        raise AuditError(f"--config {path!r}: expected a mapping of option: value, got {type(data).__name__}")
    data = {str(k).replace("-", "_"): v for k, v in data.items()}
    unknown = sorted(set(data) - set(OPTIONS))
    if unknown:
        raise AuditError(f"--config {path!r}: unknown key(s) {unknown}; allowed: {sorted(OPTIONS)}")
    for key in ("query", "augmentations"):
        if isinstance(data.get(key), str):
            data[key] = [data[key]]
    try:
        return {k: coerce_value(v, OPTIONS[k][0], f"--config {path}: {k}") for k, v in data.items()}
    except ParamError as err:
        raise AuditError(str(err)) from err


def resolve_options(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Defaults, then the ``--config`` file, then the command line."""
    args = vars(parser().parse_args(argv))
    config = read_config(args.pop("config")) if args.get("config") else {}
    args.pop("config", None)
    if "model_option" in args:
        args["model_option"] = dict(args["model_option"])
    options = {name: spec[1] for name, spec in OPTIONS.items()} | config | args
    missing = [f"--{n.replace('_', '-')}" for n in REQUIRED if not options.get(n)]
    if missing:
        raise AuditError(f"missing {', '.join(missing)} (on the command line or in the --config file); see --help")
    return options


def _crash(err: BaseException, out: str | None) -> str:
    """Write the traceback of an unexpected error to ``out/audit.log`` (or a temporary file); return its path."""
    text = "".join(traceback.format_exception(err))
    try:
        target = Path(out) / "audit.log"
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "a") as fh:
            fh.write(text)
    except (OSError, TypeError):
        fd, name = tempfile.mkstemp(prefix="unpoison-audit-", suffix=".log")
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        target = Path(name)
    return str(target)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the audit. Bad input prints ``unpoison-audit: error: ...`` and returns 2; a failure while computing
    prints one line (stage, module, what to try; the traceback goes to ``--out``/audit.log) and returns 1."""
    # kronfluence 1.0.1 calls the deprecated torch.cuda.amp.GradScaler; harmless on CPU and GPU
    warnings.filterwarnings("ignore", message=".*torch.cuda.amp.GradScaler", category=FutureWarning)
    o: dict[str, Any] = {}
    try:
        o = resolve_options(argv)
        settings = AuditSettings.from_options(o)
        audit(
            o["arch"],
            o["train"],
            o["query"],
            o["out"],
            weights=o["weights"],
            settings=settings,
            num_classes=o["num_classes"],
            model_options=o["model_option"],
            mean=o["mean"],
            std=o["std"],
            input_size=o["input_size"],
            sheet_size=o["sheet_size"],
        )
    except (AuditError, DatasetError, ParamError) as err:
        print(f"unpoison-audit: error: {err}", file=sys.stderr)
        return 2
    except AuditStageError as err:
        print(f"unpoison-audit: error: {err}", file=sys.stderr)
        return 1
    except Exception as err:  # a bug or an unforeseen failure: still one line, the traceback in a file
        path = _crash(err, o.get("out"))
        print(
            f"unpoison-audit: error: unexpected {type(err).__name__}: {first_line(err)}. Full traceback: {path}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
