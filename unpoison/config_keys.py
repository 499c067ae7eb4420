"""The rows of docs/configuration.md: each config key's type, default, range and meaning, from the JSON schema
(with :data:`unpoison.config_meanings.MEANINGS`) or from a registered method's signature and ``Args:`` docstring."""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from unpoison.config_meanings import MEANINGS
from unpoison.params import bind_params


@dataclass
class Key:
    """One row of the page."""

    path: str
    type: str
    default: Any
    embedded: Any
    range: str
    meaning: str


class MissingMeaning(ValueError):
    """A config key has no meaning: neither in :data:`MEANINGS` nor in its method's ``Args:``."""


_ABSENT = object()  # a key the embedded config.yaml does not set


def markdown(text: str) -> str:
    """Docstring markup as Markdown: ``code`` → `code`, one line, no final period."""
    return " ".join(text.replace("``", "`").split()).rstrip(".")


def _value(v: Any) -> str:
    if v is _ABSENT:
        return ""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, dict):
        return "(below)" if v else "{}"
    return str(v)


def lookup(tree: Any, path: Iterable[str]) -> Any:
    for part in path:
        if not isinstance(tree, dict) or part not in tree:
            return _ABSENT
        tree = tree[part]
    return tree


def schema_type(node: dict[str, Any]) -> str:
    """A schema node's type in words (`integer`, `list of name`, `one of none, bf16, fp16`, ...)."""
    if "enum" in node:
        return "one of " + ", ".join(map(str, node["enum"]))
    kind = node.get("type", "object" if "properties" in node or "$ref" in node else "")
    if kind == "array":
        items = node.get("items", {})
        return "list of " + (items.get("type") or ("name" if "$ref" in items else "values"))
    return " or ".join(kind) if isinstance(kind, list) else str(kind)


def schema_range(node: dict[str, Any]) -> str:
    """The bounds, pattern and list rules of a schema node."""
    parts = []
    if "minimum" in node:
        parts.append(f"≥ {node['minimum']}")
    if "exclusiveMinimum" in node:
        parts.append(f"> {node['exclusiveMinimum']}")
    if "maximum" in node:
        parts.append(f"≤ {node['maximum']}")
    if "exclusiveMaximum" in node:
        parts.append(f"< {node['exclusiveMaximum']}")
    items = node.get("items", {})
    if "minimum" in items:
        parts.append(f"items ≥ {items['minimum']}")
    if node.get("minItems"):
        parts.append("non-empty")
    if node.get("uniqueItems") or node.get("$ref") == "#/$defs/names":
        parts.append("unique")
    if "pattern" in node:
        parts.append(f"matches `{node['pattern']}`")
    return ", ".join(parts)


def type_name(hint: Any) -> str:
    """A type hint in the page's words (`integer`, `number or null`, `one of 'kl', 'ce_kl'`, `list of number`)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal:
        return "one of " + ", ".join(map(str, args))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(a) for a in args)
    if origin in (list, tuple):
        return "list of " + (type_name(args[0]) if args else "values")
    names = {bool: "boolean", int: "integer", float: "number", str: "string", type(None): "null"}
    return names.get(hint, getattr(hint, "__name__", str(hint)))


def docstring_args(obj: Any) -> dict[str, str]:
    """name → text of the ``Args:`` section of ``obj``'s docstring (classes: the first in the MRO that has one
    for each name, so subclasses inherit their base's entries)."""
    out: dict[str, str] = {}
    for owner in obj.__mro__ if isinstance(obj, type) else (obj,):
        own = owner.__dict__.get("__doc__") if isinstance(owner, type) else inspect.getdoc(owner)
        match = re.search(r"^Args:\n((?:[ \t]+.*\n?|\n)*)", inspect.cleandoc(own or ""), flags=re.M)
        if not match:
            continue
        entries = re.findall(r"^    (\w+)(?: \([^)]*\))?: (.*(?:\n {5,}.*)*)", match.group(1), flags=re.M)
        for name, text in entries:
            out.setdefault(name, " ".join(line.strip() for line in text.splitlines()))
    return out


def method_keys(target: Callable[..., Any], prefix: str, embedded: Any, skip: tuple[str, ...] = ()) -> list[Key]:
    """The keys of one registered method: its keyword arguments with type, default and ``Args:`` meaning."""
    hints = typing.get_type_hints(target.__init__ if isinstance(target, type) else target)
    defaults = bind_params(target, {}, prefix, skip)
    meanings = docstring_args(target)
    keys = []
    for name, default in defaults.items():
        if name not in meanings:
            where = f"{target.__module__}.{target.__qualname__}"
            raise MissingMeaning(f"{prefix}.{name}: add `{name}: <meaning, range>` to the Args: section of {where}")
        meaning, _, rng = meanings[name].partition(" Range: ")
        keys.append(
            Key(
                f"{prefix}.{name}",
                type_name(hints.get(name, Any)),
                default,
                lookup(embedded, [name]),
                markdown(rng),
                markdown(meaning),
            )
        )
    return keys


def meaning_of(path: str, node: dict[str, Any]) -> str:
    """:data:`MEANINGS` first (exact path, then with names as `*`), else the schema's description."""
    generic = re.sub(r"^(dataset_settings)\.[^.]+", r"\1.*", path)
    text = MEANINGS.get(path) or MEANINGS.get(generic) or node.get("description", "")
    if not text:
        raise MissingMeaning(f"{path}: add a meaning to unpoison.config_docs.MEANINGS (or a description to the schema)")
    return " ".join(str(text).split())


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref", "")
    if ref.startswith("#/$defs/"):
        return {**schema["$defs"][ref.rsplit("/", 1)[1]], **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def schema_keys(
    schema: dict[str, Any],
    node: dict[str, Any],
    prefix: str,
    embedded: Any,
    defaults: dict[str, Any] | None = None,
    meaning_prefix: str | None = None,
) -> list[Key]:
    """One row per property of a schema object (not descending into objects)."""
    keys = []
    for name, child in _resolve(schema, node).get("properties", {}).items():
        child = _resolve(schema, child)
        path = f"{prefix}.{name}" if prefix else name
        fallback = "required" if name in node.get("required", []) else _ABSENT
        default = child.get("default", (defaults or {}).get(name, fallback))
        meaning = meaning_of(f"{meaning_prefix}.{name}" if meaning_prefix else path, child)
        keys.append(Key(path, schema_type(child), default, lookup(embedded, [name]), schema_range(child), meaning))
    return keys


def table(keys: list[Key]) -> str:
    """A Markdown table of keys."""
    rows = ["| key | type | default | config.yaml | range | meaning |", "|---|---|---|---|---|---|"]
    for k in keys:
        cells = [f"`{k.path}`", k.type, _value(k.default), _value(k.embedded), k.range, k.meaning]
        rows.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    return "\n".join(rows)
