"""Write docs/configuration.md: every config key with its type, default, range and meaning.

The keys come from the two places the config check reads them from: the JSON schema
(``schemas/config.schema.yaml``: the grid, queries, influence, sweep, relearning, resources, ...) and the typed
keyword arguments of every registered method (attack parameters, detector and unlearner settings, model options,
dataset sources; :func:`unpoison.params.bind_params`). Meanings come from :data:`MEANINGS` for schema keys and from
the ``Args:`` section of each method's docstring, so a new method documents its settings where it defines them.

``python -m unpoison.config_docs --write`` rewrites the page; ``--check`` (and ``tests/test_docs.py``) fails when
the page is stale or a key has no meaning.
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
import types
import typing
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import yaml

from unpoison.config import SCHEMA
from unpoison.params import bind_params

ROOT = SCHEMA.parents[1]
PAGE = ROOT / "docs" / "configuration.md"
EMBEDDED = ROOT / "config.yaml"

# Meanings of the schema's keys (dotted paths; `*` = any name). Method settings document themselves (Args:).
MEANINGS = {
    "datasets": "datasets to run, each defined under `dataset_settings`",
    "attacks": "attacks to run (registered names, see [methods](methods.md#attacks)); each configured per dataset "
               "under `dataset_settings.<dataset>.attacks`",
    "seeds": "experiment seeds; a seed fixes every random choice of a run (victim and target class, poisons, queries, "
             "transforms, initialisation, data order), each stage drawing from its own stream",
    "detectors": "detectors to run: registered names or named variants (a `detector_settings` entry with `method:`)",
    "unlearners": "unlearners to run: registered names or named variants; `none` is the poisoned model itself",
    "device": "where jobs compute: `auto` = CUDA when the job sees a GPU, else the CPU (execution only)",
    "plugins": "Python modules imported before the config is checked and in every job, to register your own "
               "attacks, detectors or unlearners ([architecture](architecture.md#add-your-own-detector-in-one-file))",
    "counterfactual": "detectors whose flags get paper Table 3's counterfactual (retrain without the detected vs "
                      "without the missed poisons; reads the ground truth by design)",
    "unlearn_on": "unlearner → the detectors whose flags it unlearns (default: every detector of the grid); names "
                  "outside the grid are dropped",
    "dataset_settings": "one entry per dataset name: its source and the source's keys, `model`, `train`, `attacks`",
    "dataset_settings.*.source": "where the images come from: a registered source ([datasets](datasets.md))",
    "dataset_settings.*.model": "the architecture: `name` (a registered model) and that model's options (below)",
    "dataset_settings.*.train": "the training recipe of every model of this dataset (keys below)",
    "dataset_settings.*.attacks": "attack name → its parameters on this dataset (keys below, per attack)",
    "queries.count": "affected test points handed to the defender per run; detectors intersect their flags over "
                     "the first `n_points` of them (paper Tables 4–5: 1, 5, 10)",
    "queries.controls": "clean test images the model classifies correctly as the query's predicted class, scored "
                        "in the same pass, only for detectors with a `control_probe` (`delta_influence_contrast`, "
                        "`delta_influence_controls`)",
    "influence.n_b": "transformed copies of each query (random label and/or augmentation) scored beside it "
                     "(the paper: 50)",
    "influence.shards": "jobs per influence pass over disjoint parts of the training set (docs/cluster.md)",
    "influence.factors.batch_size": "per-device batch of the covariance and lambda stages (execution only)",
    "influence.factors.amp": "autocast while fitting: none, bf16 or fp16 (GPU)",
    "influence.factors.covariance_max_examples": "fit the covariance stage on a seeded random subset of this many "
                                                 "training points; null = all",
    "influence.factors.lambda_max_examples": "fit the eigenvalue-correction (lambda) stage on a seeded random subset "
                                             "of this many training points; null = all",
    "influence.factors.num_workers": "DataLoader workers (execution only; data are in memory, 0 is usually fastest)",
    "influence.factors.pin_memory": "pin DataLoader memory (execution only)",
    "influence.scores.train_batch_size": "per-device training batch while scoring (execution only)",
    "influence.scores.query_batch_size": "query gradients computed this many at a time, then accumulated: every "
                                         "query is still scored in one pass (execution only)",
    "influence.scores.amp": "autocast while scoring: none, bf16 or fp16 (GPU)",
    "influence.scores.query_gradient_low_rank": "low-rank query gradients (saves memory, approximates); null = exact",
    "influence.scores.damping_factor": "damping added to the EK-FAC eigenvalues; null = kronfluence's heuristic "
                                       "(0.1 × mean eigenvalue)",
    "influence.scores.num_workers": "DataLoader workers (execution only)",
    "influence.scores.pin_memory": "pin DataLoader memory (execution only)",
    "sweep.taus": "τ values of the Δ-rule sweep (from saved scores, no re-scoring)",
    "sweep.ks": "k values of the Δ-rule sweep",
    "sweep.thresholds": "EK-FAC thresholds of the sweep",
    "sweep.n_points": "affected test points intersected in the sweep (the first n of the run's queries)",
    "relearning.enabled": "fine-tune each evaluated model briefly on clean data the defender keeps, then measure "
                          "PSR and accuracy again (`psr_relearned`, `acc_relearned`)",
    "relearning.fraction": "share of the training set fine-tuned on: a fixed random subset drawn by the seed, "
                           "minus the detector's flags",
    "relearning.epochs": "passes over that subset",
    "relearning.lr_factor": "constant learning rate of the fine-tuning as a share of the recipe's peak lr",
    "detector_settings": "detector name → its settings (below, per method), or a named variant "
                         "`{method: <registered detector>, ...settings}`",
    "unlearner_settings": "unlearner name → its settings (below, per method), or a named variant "
                          "`{method: <registered unlearner>, ...settings}`",
    "resources": "per rule: `threads`, `mem_mb`, `runtime` (minutes), `gpu` (a count); `default` for rules without "
                 "an entry ([cluster](cluster.md))",
    "train.epochs": "passes over the training set",
    "train.batch_size": "images per SGD step (≥ 2: BatchNorm)",
    "train.lr": "peak SGD learning rate",
    "train.momentum": "SGD momentum",
    "train.nesterov": "Nesterov momentum",
    "train.weight_decay": "L2 weight decay",
    "train.milestones": "epochs at which lr ×= gamma (increasing, each < epochs)",
    "train.gamma": "learning-rate factor at each milestone",
    "train.crop_padding": "random shift of up to this many pixels (zero fill); 0 = off",
    "train.flip": "random horizontal flip",
    "train.amp": "autocast: none, bf16 or fp16 (CUDA; bf16 also runs on CPU, slowly)",
    "train.channels_last": "NHWC memory format (faster convolutions on recent GPUs)",
    "train.eval_batch_size": "inference batch (execution only)",
    "resource.threads": "CPU threads of the job (torch's threads are capped at it)",
    "resource.mem_mb": "memory in MB",
    "resource.runtime": "time limit in minutes",
    "resource.gpu": "GPUs (a count; 0 = none)",
}


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


def _lookup(tree: Any, path: Iterable[str]) -> Any:
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
    for owner in (obj.__mro__ if isinstance(obj, type) else (obj,)):
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
        keys.append(Key(f"{prefix}.{name}", type_name(hints.get(name, Any)), default,
                        _lookup(embedded, [name]), markdown(rng), markdown(meaning)))
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


def schema_keys(schema: dict[str, Any], node: dict[str, Any], prefix: str, embedded: Any,
                defaults: dict[str, Any] | None = None, meaning_prefix: str | None = None) -> list[Key]:
    """One row per property of a schema object (not descending into objects)."""
    keys = []
    for name, child in _resolve(schema, node).get("properties", {}).items():
        child = _resolve(schema, child)
        path = f"{prefix}.{name}" if prefix else name
        fallback = "required" if name in node.get("required", []) else _ABSENT
        default = child.get("default", (defaults or {}).get(name, fallback))
        meaning = meaning_of(f"{meaning_prefix}.{name}" if meaning_prefix else path, child)
        keys.append(Key(path, schema_type(child), default, _lookup(embedded, [name]), schema_range(child), meaning))
    return keys


def table(keys: list[Key]) -> str:
    """A Markdown table of keys."""
    rows = ["| key | type | default | config.yaml | range | meaning |", "|---|---|---|---|---|---|"]
    for k in keys:
        cells = [f"`{k.path}`", k.type, _value(k.default), _value(k.embedded), k.range, k.meaning]
        rows.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    return "\n".join(rows)


def _method_section(title: str, registry: dict[str, Any], prefix: str, embedded: dict[str, Any],
                    skip: tuple[str, ...] = ()) -> list[str]:
    out = []
    for name in sorted(registry):
        target = registry[name]
        label = getattr(target, "display_name", "") or ""
        cite = getattr(target, "citation", "") or ""
        out += [f"### {title} `{name}`" + (f" ({label})" if label and label != name else ""), ""]
        if cite:
            out += [f"{cite}.", ""]
        if hasattr(target, "bind_params"):  # custom settings (CF: overrides of the training recipe)
            out += [inspect.getdoc(target.bind_params).splitlines()[0] + " Any key of `train` above.", ""]
            continue
        keys = method_keys(target, prefix.format(name=name), _lookup(embedded, [name]), skip)
        out += [table(keys) if keys else "No settings.", ""]
    return out


HEADER = """# Configuration

Every key the pipeline reads, with its type, its default (what the code uses when the key is omitted), the value
in the embedded `config.yaml` (for dataset keys: its `digits` entry), the allowed range and its meaning. The
config is checked against all of this before any job runs ([validation](validation.md)); an unknown key at any
level is an error. Experiments (`experiments/*.yaml`) are layered on `config.yaml` with `--configfile`, and
`--config key=value` overrides one key.

Generated by `python -m unpoison.config_docs --write` from `schemas/config.schema.yaml` and the typed keyword
arguments of every registered method (their docstrings' `Args:`); `tests/test_docs.py` fails when this page is
stale. "Execution only" settings change speed or memory, never results, and re-run nothing when changed.
"""


def _grid_sections(schema: dict[str, Any], config: dict[str, Any]) -> list[str]:
    from unpoison.influence import FactorSettings, ScoreSettings
    from unpoison.relearn import RelearnSettings
    from unpoison.sweep import SweepGrid

    props = schema["properties"]
    top = {**schema, "properties": {k: v for k, v in props.items() if "properties" not in v or k == "unlearn_on"}}
    influence = props["influence"]["properties"]
    out = ["## The grid and the run", "", table(schema_keys(schema, top, "", config)), ""]
    out += ["## `queries`: the defender's affected test points", "",
            table(schema_keys(schema, props["queries"], "queries", config["queries"])), ""]
    out += ["## `influence`: EK-FAC influence (kronfluence)", "",
            table(schema_keys(schema, {**props["influence"], "properties": {"n_b": influence["n_b"]}}, "influence",
                              config["influence"])), ""]
    for name, cls, title in (("factors", FactorSettings, "EK-FAC factors, fitted once per trained model"),
                             ("scores", ScoreSettings, "every probe of every query scored in one pass")):
        out += [f"### `influence.{name}`: {title}", "", table(schema_keys(
            schema, influence[name], f"influence.{name}", config["influence"].get(name), cls().to_dict())), ""]
    for name, cls, title in (("sweep", SweepGrid, "the threshold sweep (evaluation, from saved scores)"),
                             ("relearning", RelearnSettings, "the relearning check of every evaluated model")):
        out += [f"## `{name}`: {title}", "", table(schema_keys(schema, props[name], name, config.get(name),
                                                               cls().to_dict())), ""]
    res = props["resources"]
    rules = ", ".join(f"`{r}`" for r in res["properties"])
    out += ["## `resources`: what each rule asks the scheduler for", "", meaning_of("resources", res)
            + f". Entries: {rules}. Each entry has these keys (config.yaml: `default`):", "",
            table(schema_keys(schema, schema["$defs"]["resource"], "resources.<rule>", config["resources"]["default"],
                              dict.fromkeys(("threads", "mem_mb", "runtime", "gpu"), "`default`'s"), "resource")), ""]
    return out


def _dataset_sections(schema: dict[str, Any], config: dict[str, Any]) -> list[str]:
    from unpoison.data import SOURCES
    from unpoison.models import MODEL_ARGS, MODELS
    from unpoison.training import TrainRecipe

    entry = schema["properties"]["dataset_settings"]["additionalProperties"]
    first = next(iter(config["dataset_settings"]))
    digits = config["dataset_settings"][first]
    core = {**entry, "properties": {k: entry["properties"][k] for k in ("source", "model", "train", "attacks")}}
    out = ["## `dataset_settings.<dataset>`: data, model, recipe, attacks", "",
           table(schema_keys(schema, core, "dataset_settings.<dataset>", digits,
                             meaning_prefix="dataset_settings.*")), ""]
    out += ["### `train`: the training recipe", "", table(schema_keys(
        schema, entry["properties"]["train"], "train", digits["train"], TrainRecipe().to_dict(), "train")), ""]
    out += _method_section("source", SOURCES, "dataset_settings.<dataset>", {digits["source"]: digits})
    out += _method_section("model", MODELS, "model", {digits["model"]["name"]: digits["model"]}, MODEL_ARGS)
    return out


def render() -> str:
    """The whole page."""
    from unpoison.attacks import ATTACKS
    from unpoison.detectors import DETECTORS
    from unpoison.unlearners import UNLEARNERS

    schema = yaml.safe_load(SCHEMA.read_text())
    config = yaml.safe_load(EMBEDDED.read_text())
    digits = next(iter(config["dataset_settings"].values()))
    parts = [HEADER, *_grid_sections(schema, config), *_dataset_sections(schema, config)]
    parts += ["## Attacks: `dataset_settings.<dataset>.attacks.<attack>`", "",
              "What each attack does: [methods](methods.md#attacks).", ""]
    parts += _method_section("attack", ATTACKS, "attacks.{name}", digits["attacks"])
    parts += ["## Detectors: `detector_settings.<name>`", "",
              "What each detector does: [methods](methods.md#detectors). A named variant runs a registered "
              "detector with other settings: `detector_settings: {ekfac_5pts: {method: ekfac, n_points: 5}}`.", ""]
    parts += _method_section("detector", DETECTORS, "detector_settings.{name}", config["detector_settings"])
    parts += ["## Unlearners: `unlearner_settings.<name>`", "",
              "What each unlearner does: [methods](methods.md#unlearners). Named variants work as for detectors.", ""]
    parts += _method_section("unlearner", UNLEARNERS, "unlearner_settings.{name}", config["unlearner_settings"])
    return "\n".join(parts).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    """``--write`` the page, or ``--check`` that it is current (exit 1 when stale)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"rewrite {PAGE.relative_to(ROOT)}")
    parser.add_argument("--check", action="store_true", help="exit 1 when the page differs from the generated one")
    args = parser.parse_args(argv)
    text = render()
    if args.write:
        PAGE.write_text(text)
    elif args.check:
        if PAGE.read_text() != text:
            print(f"{PAGE.relative_to(ROOT)} is stale: run python -m unpoison.config_docs --write", file=sys.stderr)
            return 1
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
