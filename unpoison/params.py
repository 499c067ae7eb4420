"""Check config parameters against the typed keyword arguments of the function or class that takes them.

Attacks, detectors, unlearners, models and dataset sources are registries: their settings are the keyword
arguments of a constructor or loader, so those signatures are the one source of truth for which keys exist
and what type each has. :func:`bind_params` rejects unknown keys (naming the allowed ones) and values of the
wrong type (naming the key, the value and the type), and returns the complete, normalised settings: defaults
filled in and integers given to a ``float`` parameter turned into floats. The normalised form is what rules
pass as ``params:``, so ``tau: 0`` and ``tau: 0.0`` (or an explicit default and an omitted one) are the same
setting and re-run nothing.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import types
import typing
from collections.abc import Callable, Collection, Mapping
from typing import Any, Literal


class ParamError(ValueError):
    """A parameter is unknown or has the wrong type; the message names the key, the value and what is allowed."""


def _describe(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if hint is type(None):
        return "null"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(hint))
    if origin in (list, tuple, Collection):
        (item,) = typing.get_args(hint)[:1] or (Any,)
        return f"a list of {_describe(item)}"
    names = {bool: "true/false", int: "an integer", float: "a finite number", str: "a string"}
    return names.get(hint, getattr(hint, "__name__", str(hint)))


_MISMATCH = object()


def _coerce(value: Any, hint: Any) -> Any:
    """``value`` converted to ``hint`` (int → float only), or :data:`_MISMATCH`."""
    origin = typing.get_origin(hint)
    if hint is Any or hint is inspect.Parameter.empty:
        return value
    if hint is type(None):
        return value if value is None else _MISMATCH
    if origin is Literal:
        return value if value in typing.get_args(hint) else _MISMATCH
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(hint):
            got = _coerce(value, option)
            if got is not _MISMATCH:
                return got
        return _MISMATCH
    if origin in (list, tuple, Collection):
        if not isinstance(value, (list, tuple)):
            return _MISMATCH
        (item,) = typing.get_args(hint)[:1] or (Any,)
        items = [_coerce(v, item) for v in value]
        return _MISMATCH if any(v is _MISMATCH for v in items) else items
    if hint is bool:
        return value if isinstance(value, bool) else _MISMATCH
    if hint is int:
        return value if isinstance(value, int) and not isinstance(value, bool) else _MISMATCH
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return _MISMATCH
        return float(value)
    if isinstance(hint, type):
        return value if isinstance(value, hint) else _MISMATCH
    return value


def coerce_value(value: Any, hint: Any, key: str) -> Any:
    """``value`` checked against the type ``hint`` (int accepted for float); raise :class:`ParamError` naming ``key``."""
    got = _coerce(value, hint)
    if got is _MISMATCH:
        raise ParamError(f"{key}: {value!r} must be {_describe(hint)}")
    return got


def _parameters(target: Callable[..., Any], skip: Collection[str]) -> dict[str, tuple[Any, Any]]:
    """name → (type hint, default) of the keyword settings ``target`` accepts."""
    if dataclasses.is_dataclass(target):
        hints = typing.get_type_hints(target)
        out = {}
        for f in dataclasses.fields(target):
            if f.name in skip or not f.init:
                continue
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            out[f.name] = (hints.get(f.name, Any), default)
        return out
    fn = target.__init__ if isinstance(target, type) else target  # type: ignore[misc]
    hints = typing.get_type_hints(fn)
    out = {}
    for name, p in inspect.signature(fn).parameters.items():
        if name == "self" or name in skip or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        default = None if p.default is inspect.Parameter.empty else p.default
        out[name] = (hints.get(name, Any), default)
    return out


def allowed_keys(target: Callable[..., Any], skip: Collection[str] = ()) -> list[str]:
    """The setting names ``target`` accepts (its keyword parameters or dataclass fields, minus ``skip``)."""
    return sorted(_parameters(target, skip))


def bind_params(
    target: Callable[..., Any], params: Mapping[str, Any] | None, key: str, skip: Collection[str] = ()
) -> dict[str, Any]:
    """Check ``params`` against ``target``'s typed keyword parameters and return them complete and normalised.

    Args:
        target: a function, a class (its ``__init__``) or a dataclass.
        params: the settings from the config (``None`` = all defaults).
        key: the config path of ``params``, used in error messages (e.g. ``detector_settings.ekfac``).
        skip: parameters the pipeline supplies itself (e.g. ``num_classes``), not settable from the config.

    Returns:
        Every accepted parameter with its value: defaults filled in, ints given to floats converted.

    Raises:
        ParamError: an unknown key (the message lists the allowed ones) or a value of the wrong type.
    """
    params = dict(params or {})
    spec = _parameters(target, skip)
    unknown = sorted(set(params) - set(spec))
    if unknown:
        raise ParamError(f"{key}: unknown key(s) {unknown}; allowed: {sorted(spec)}")
    out = {}
    for name, (hint, default) in spec.items():
        out[name] = coerce_value(params[name], hint, f"{key}.{name}") if name in params else default
    return out


def require(ok: bool, key: str, value: Any, allowed: str) -> None:
    """Raise :class:`ParamError` ``"{key}: {value!r} is not allowed; must be {allowed}"`` unless ``ok``."""
    if not ok:
        raise ParamError(f"{key}: {value!r} is not allowed; it must be {allowed}")
