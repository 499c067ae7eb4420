"""A model from the user's own code: ``package.module:ClassOrFactory`` or ``path/to/file.py:ClassOrFactory``.

The object named after the colon is imported and called with the ``--model-option`` keyword arguments (a class
or a function returning an ``nn.Module``; a module-level model instance is taken as it is). Every failure
raises :class:`~unpoison.audit.inputs.AuditError` naming what went wrong and the fix: module or file not
found, a missing dependency, an error while importing, a missing attribute (with the module's candidates),
a constructor that rejects the options (with its signature), something that is not an ``nn.Module``.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from torch import nn

from unpoison.audit.inputs import AuditError, first_line


def is_import_spec(arch: str) -> bool:
    """Whether ``arch`` names user code (``module:Attr`` or ``file.py:Attr``) rather than a model name."""
    return ":" in arch


def split_spec(arch: str) -> tuple[str, str]:
    """``module:Attr`` → (module or file, attribute path); raise naming the expected form."""
    where, _, attr = arch.rpartition(":")
    if not where or not attr or not all(part.isidentifier() for part in attr.split(".")):
        raise AuditError(
            f"--arch {arch!r}: expected MODULE:NAME or FILE.py:NAME, NAME being a class or a function that returns "
            "the model. Fix: e.g. --arch mylab.models:PreActResNet18 or --arch train.py:Net"
        )
    return where, attr


def _is_file(where: str) -> bool:
    return where.endswith(".py") or os.sep in where or "/" in where


def import_file(path: str) -> ModuleType:
    """Import a Python file as a module (its directory goes on ``sys.path`` so its own imports resolve)."""
    p = Path(path).expanduser().resolve()
    if not p.is_file():
        raise AuditError(
            f"--arch: file {path!r} not found (looked at {p}). Fix: give the path of the .py file that "
            "defines the model, relative to the current directory or absolute"
        )
    if str(p.parent) not in sys.path:
        sys.path.insert(0, str(p.parent))
    name = f"unpoison_user_{p.stem}"
    spec = importlib.util.spec_from_file_location(name, p)
    if spec is None or spec.loader is None:
        raise AuditError(f"--arch: {path!r} cannot be imported as Python source. Fix: give a .py file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look the module up by name
    try:
        spec.loader.exec_module(module)
    except BaseException as err:
        sys.modules.pop(name, None)
        raise _import_failed(str(p), err) from err
    return module


def import_module(name: str) -> ModuleType:
    """Import a dotted module name; the current directory is searched first (as ``python -m`` does)."""
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name is not None and (name == err.name or name.startswith(err.name + ".")):
            raise AuditError(
                f"--arch: module {name!r} not found (no {err.name!r} on the Python path, which starts with the "
                f"current directory {os.getcwd()}). Fix: run from the directory that holds {err.name.split('.')[0]}/, "
                "add that directory to PYTHONPATH, pip install the package, or name the file itself: "
                f"--arch path/to/{name.rsplit('.', 1)[-1]}.py:NAME"
            ) from err
        raise _import_failed(name, err) from err
    except BaseException as err:
        raise _import_failed(name, err) from err


def _import_failed(what: str, err: BaseException) -> AuditError:
    if isinstance(err, ModuleNotFoundError) and err.name:
        return AuditError(
            f"--arch: importing {what!r} failed: it imports {err.name!r}, which is not installed. "
            f"Fix: install it in this environment (e.g. pip install {err.name.split('.')[0]})"
        )
    if isinstance(err, SystemExit):
        return AuditError(
            f"--arch: importing {what!r} ran sys.exit({err.code}): the file runs a script when imported. "
            'Fix: put the script part under `if __name__ == "__main__":`'
        )
    return AuditError(
        f"--arch: importing {what!r} raised {type(err).__name__}: {first_line(err)}. Fix: the module "
        'must import cleanly (try `python -c "import ..."`); training code belongs under '
        '`if __name__ == "__main__":`'
    )


def candidates(module: ModuleType) -> list[str]:
    """The nn.Module classes and the functions a module defines itself (to suggest when a name is wrong)."""
    found = []
    for name, obj in vars(module).items():
        if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
            continue
        if (inspect.isclass(obj) and issubclass(obj, nn.Module)) or inspect.isfunction(obj):
            found.append(name)
    return sorted(found)


def resolve_attribute(module: ModuleType, attr: str, where: str) -> Any:
    """``module.attr`` (a dotted path is followed), or raise listing what the module defines."""
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            names = candidates(module)
            raise AuditError(
                f"--arch {where}:{attr}: {where!r} has no attribute {attr!r}. It defines "
                + (f"these model classes and functions: {names[:20]}" if names else "no nn.Module class or function")
                + f". Fix: --arch {where}:NAME with one of them"
            )
        obj = getattr(obj, part)
    return obj


def signature_text(obj: Any) -> str:
    """``(a, b=1, ...)`` of a callable, or ``(...)`` when Python cannot tell."""
    try:
        return str(inspect.signature(obj))
    except (TypeError, ValueError):
        return "(...)"


def accepts(obj: Any, name: str) -> bool:
    """Whether calling ``obj`` takes a keyword argument ``name`` explicitly."""
    try:
        return name in inspect.signature(obj).parameters
    except (TypeError, ValueError):
        return False


def construct(obj: Any, options: dict[str, Any], label: str) -> nn.Module:
    """``obj(**options)`` as an nn.Module, or raise naming the call, the error and the signature."""
    if isinstance(obj, nn.Module):
        if options:
            raise AuditError(
                f"--arch {label} is a model instance, not a class: --model-option {sorted(options)} "
                "cannot be applied; remove them or name the class"
            )
        return obj
    if not callable(obj):
        raise AuditError(
            f"--arch {label} is a {type(obj).__name__}, not a class or function. Fix: name the nn.Module "
            "class or a function that returns the model"
        )
    call = f"{label.rpartition(':')[2]}({', '.join(f'{k}={v!r}' for k, v in options.items())})"
    try:
        model = obj(**options)
    except Exception as err:
        raise AuditError(
            f"--arch {label}: {call} failed with {type(err).__name__}: {first_line(err)}. Its signature is "
            f"{signature_text(obj)}. Fix: --model-option KEY=VALUE for each argument your model was built with"
        ) from err
    if not isinstance(model, nn.Module):
        raise AuditError(
            f"--arch {label}: {call} returned a {type(model).__name__}, not a torch.nn.Module. Fix: name "
            "the model class, or a function that returns the model"
        )
    return model


def build_user_model(arch: str, options: dict[str, Any], num_classes: int) -> tuple[nn.Module, dict[str, Any]]:
    """Import and build ``arch`` (``module:Attr`` or ``file.py:Attr``).

    ``num_classes`` is passed when the callable has a ``num_classes`` parameter the options do not set.

    Returns:
        The model and the keyword arguments it was built with.
    """
    where, attr = split_spec(arch)
    module = import_file(where) if _is_file(where) else import_module(where)
    obj = resolve_attribute(module, attr, where)
    options = dict(options)
    if not isinstance(obj, nn.Module) and "num_classes" not in options and accepts(obj, "num_classes"):
        options["num_classes"] = num_classes
    return construct(obj, options, arch), options
