"""Validation and normalisation of a workflow config, run by the Snakefile before any job.

:func:`validate_config` checks, in the main process and in this order: the JSON schema (every level closed,
types, ranges, enums, unique names and seeds, wildcard-safe names); every registered method's settings
against its typed keyword arguments (unknown keys, types) and its own range checks; and, with
``check_data``, the data themselves (files readable, arrays of the right dtype and shape, labels in range,
non-empty splits), the attacks against the images (trigger fits the image side, poison count ≤ class size,
enough affected test images for ``queries.count``) and each model against the image shape. Every message
names the key or file, the value and what is allowed.

The ``normalised_*`` helpers give rules their ``params:``: complete (defaults filled in), with numbers in
canonical form and execution-only settings split off, so Snakemake re-runs a job only when its science
changes (``tau: 0`` vs ``0.0``, ``device``, batch sizes of inference and scoring re-run nothing).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from unpoison.attacks import ATTACKS
from unpoison.data import SOURCES, DatasetError, DatasetInfo, describe_dataset
from unpoison.detectors import DETECTORS
from unpoison.influence import FactorSettings, ScoreSettings
from unpoison.models import build_model, model_options
from unpoison.params import ParamError, bind_params
from unpoison.training import TrainRecipe
from unpoison.unlearners import UNLEARNERS

SCHEMA = Path(__file__).resolve().parents[1] / "schemas" / "config.schema.yaml"
SOURCE_EXCLUDED = ("model", "train", "attacks")


class ConfigError(ValueError):
    """The configuration is invalid; the message says which key, which value and what is allowed."""


def _wrap(key: str, fn, *args, **kwargs):
    """Call ``fn``; turn its ValueError/TypeError into a :class:`ConfigError` that names ``key``."""
    try:
        return fn(*args, **kwargs)
    except ConfigError:
        raise
    except (ValueError, TypeError) as err:
        msg = str(err)
        if msg.startswith(key) or msg.startswith("queries."):  # already names its key
            raise ConfigError(msg) from err
        raise ConfigError(f"{key}.{msg}" if isinstance(err, ParamError) else f"{key}: {msg}") from err


# ---- the JSON schema ------------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _schema(path: str) -> dict[str, Any]:
    return yaml.safe_load(Path(path).read_text())


def _format_schema_error(err: Any) -> str:
    where = ".".join(str(p) for p in err.absolute_path) or "(top level)"
    if err.validator == "additionalProperties":
        allowed = sorted(err.schema.get("properties", {}))
        free = "^_" in err.schema.get("patternProperties", {})  # YAML-anchor keys at the top level
        extra = sorted(k for k in set(err.instance) - set(allowed) if not (free and k.startswith("_")))
        return f"{where}: unknown key(s) {extra}; allowed: {allowed}"
    if err.validator == "pattern" and "A-Za-z0-9_-" in str(err.validator_value):
        return (
            f"{where}: name {err.instance!r} may hold only letters, digits, '_' and '-' "
            "(names become parts of file paths and Snakemake wildcards)"
        )
    if err.validator == "oneOf" and "description" in err.schema:
        return f"{where}: {err.instance!r} is not allowed; it must be {err.schema['description']}"
    if err.validator == "propertyNames":
        return f"{where}: name {err.instance!r} is not allowed: {err.message}"
    return f"{where}: {err.message}"


def check_schema(config: dict[str, Any], schema: str | Path = SCHEMA) -> None:
    """Raise :class:`ConfigError` listing every violation of the JSON schema (key path, value, rule)."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(_schema(str(schema)))
    errors = sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        lines = sorted(dict.fromkeys(_format_schema_error(e) for e in errors))
        raise ConfigError("; ".join(lines[:10]) + (f"; and {len(lines) - 10} more" if len(lines) > 10 else ""))


# ---- registered methods and data ------------------------------------------------------------------


def _known(key: str, names: Any, allowed: Any) -> None:
    for name in names:
        if name not in allowed:
            raise ConfigError(f"{key}: {name!r} is not a known name; allowed: {sorted(allowed)}")


def _known_or_variant(key: str, names: list[str], settings: dict[str, Any], registry: Any) -> None:
    """Every name of a grid list runs a registered method: its own, or the ``method:`` of its settings."""
    for name in names:
        if name not in registry and "method" not in settings.get(name, {}):
            raise ConfigError(
                f"{key}: {name!r} is not a known name; allowed: {sorted(registry)}, or a variant: a name whose "
                f"{key[:-1]}_settings entry has `method: <one of them>`"
            )


def _check_methods(config: dict[str, Any]) -> None:
    n_b = config["influence"]["n_b"]
    _wrap("influence.factors", FactorSettings.from_dict, config["influence"].get("factors"))
    _wrap("influence.scores", ScoreSettings.from_dict, config["influence"].get("scores"))
    for name in sorted(set(config["detectors"]) | set(config["detector_settings"])):
        key = f"detector_settings.{name}"
        settings = config["detector_settings"].get(name, {})
        method = _wrap(key, DETECTORS.method_of, name, settings)
        det = _wrap(key, DETECTORS.create, method, DETECTORS.variant_params(settings), key)
        if name in config["detectors"]:  # settings of detectors outside the grid are type-checked only
            _wrap(key, det.check, n_b)
        n_points = det.params.get("n_points")
        if name in config["detectors"] and n_points is not None and n_points > config["queries"]["count"]:
            raise ConfigError(
                f"{key}.n_points: {n_points} test points requested but queries.count = {config['queries']['count']}: "
                "raise queries.count or lower n_points"
            )
    for name in sorted(set(config["unlearners"]) | set(config["unlearner_settings"])):
        key = f"unlearner_settings.{name}"
        settings = config["unlearner_settings"].get(name, {})
        method = _wrap(key, UNLEARNERS.method_of, name, settings)
        _wrap(key, UNLEARNERS.create, method, UNLEARNERS.variant_params(settings), key)


def _check_model(key: str, model: dict[str, Any], info: DatasetInfo | None) -> None:
    options = _wrap(key, model_options, model["name"], {k: v for k, v in model.items() if k != "name"}, key)
    if info is None or info.image_shape is None:
        return
    import torch

    c, h, w = info.image_shape
    classes = len(info.train_counts) if info.train_counts is not None else 10
    try:
        with torch.no_grad():
            net = build_model(model["name"], classes, c, options).eval()
            out = net(torch.zeros(1, c, h, w))
    except (RuntimeError, ValueError) as err:
        raise ConfigError(f"{key}.name: model {model['name']!r} cannot classify {c}×{h}×{w} images ({err})") from err
    if tuple(out.shape) != (1, classes):
        raise ConfigError(
            f"{key}.name: model {model['name']!r} returned logits of shape {tuple(out.shape)} for one image"
        )


def _check_dataset(config: dict[str, Any], name: str, check_data: bool) -> None:
    settings = config["dataset_settings"][name]
    key = f"dataset_settings.{name}"
    if settings["source"] not in SOURCES:
        raise ConfigError(f"{key}.source: {settings['source']!r} is not a known source; allowed: {sorted(SOURCES)}")
    source_args = _wrap(key, normalised_source, settings, key)
    train = _wrap(f"{key}.train", TrainRecipe.from_dict, settings["train"], f"{key}.train")
    for name in config["unlearners"]:  # each unlearner's settings against this dataset's recipe
        u_settings = config["unlearner_settings"].get(name, {})
        unlearner = UNLEARNERS.create(UNLEARNERS.method_of(name, u_settings), UNLEARNERS.variant_params(u_settings))
        _wrap(f"unlearner_settings.{name} (on {key}.train)", unlearner.check, train)
    _known(f"{key}.attacks", settings["attacks"], ATTACKS)
    info = None
    if check_data:
        try:
            info = describe_dataset(source_args)
        except DatasetError as err:
            raise ConfigError(f"{key}: {err}") from err
    _check_model(f"{key}.model", settings["model"], info)
    n_controls = config["queries"].get("controls", 10)
    if info is not None and info.test_counts is not None and n_controls > int(sum(info.test_counts)):
        raise ConfigError(
            f"queries.controls: {n_controls} control queries requested but {key} has only "
            f"{int(sum(info.test_counts))} test images; lower queries.controls"
        )
    for attack in config["attacks"]:
        if attack not in settings["attacks"]:
            raise ConfigError(
                f"{key}.attacks: no settings for attack {attack!r}; add `{attack}: {{...}}` (e.g. its poison count)"
            )
    for attack, params in settings["attacks"].items():
        akey = f"{key}.attacks.{attack}"
        instance = _wrap(akey, ATTACKS.create, attack, params, akey)
        if attack in config["attacks"]:
            _wrap(akey, instance.check, info, config["queries"]["count"])


def validate_config(config: dict[str, Any], check_data: bool = True, schema: str | Path = SCHEMA) -> None:
    """Raise :class:`ConfigError` if ``config`` cannot run; see the module docstring for what is checked.

    Args:
        config: the merged Snakemake config (CLI strings already coerced, see :func:`coerce_cli_scalars`).
        check_data: also open the datasets (main process only: cluster jobs skip it).
        schema: the JSON schema file.
    """
    check_schema(config, schema)
    _known("datasets", config["datasets"], config["dataset_settings"])
    _known("attacks", config["attacks"], ATTACKS)
    _known_or_variant("detectors", config["detectors"], config["detector_settings"], DETECTORS)
    _known_or_variant("unlearners", config["unlearners"], config["unlearner_settings"], UNLEARNERS)
    _check_methods(config)
    from unpoison.sweep import SweepGrid

    sweep = _wrap("sweep", SweepGrid.from_dict, config.get("sweep"))
    if sweep.n_points > config["queries"]["count"]:
        raise ConfigError(f"sweep.n_points: {sweep.n_points} exceeds queries.count = {config['queries']['count']}")
    for name in config.get("counterfactual", []):  # runs for those of them that are in the grid
        if name not in DETECTORS and "method" not in config["detector_settings"].get(name, {}):
            raise ConfigError(
                f"counterfactual: {name!r} is not a known detector; allowed: {sorted(DETECTORS)} or a named variant"
            )
    for unlearner, detectors in (config.get("unlearn_on") or {}).items():  # pairs outside the grid are dropped
        if unlearner not in UNLEARNERS and "method" not in config["unlearner_settings"].get(unlearner, {}):
            raise ConfigError(
                f"unlearn_on: {unlearner!r} is not a known unlearner; allowed: {sorted(UNLEARNERS)} or a named variant"
            )
        for name in detectors:
            if name not in DETECTORS and "method" not in config["detector_settings"].get(name, {}):
                raise ConfigError(
                    f"unlearn_on.{unlearner}: {name!r} is not a known detector; allowed: {sorted(DETECTORS)} or a named variant"
                )
    for name in config["datasets"]:
        _check_dataset(config, name, check_data)


# ---- normalised params for the rules -------------------------------------------------------------


def normalised_source(settings: dict[str, Any], key: str = "dataset") -> dict[str, Any]:
    """The loader's complete settings (``source`` plus its keyword arguments, defaults filled in)."""
    given = {k: v for k, v in settings.items() if k not in SOURCE_EXCLUDED and k != "source"}
    return {"source": settings["source"], **bind_params(SOURCES[settings["source"]], given, key)}


def normalised_model(model: dict[str, Any], key: str = "model") -> dict[str, Any]:
    """``{"name": ..., **options}`` with every option of the model filled in."""
    return {"name": model["name"], **model_options(model["name"], {k: v for k, v in model.items() if k != "name"}, key)}


def normalised_recipe(train: dict[str, Any]) -> dict[str, Any]:
    """The training recipe's science (``eval_batch_size`` is execution and left out)."""
    return TrainRecipe.from_dict(train).science()


def coerce_cli_scalars(value: Any) -> Any:
    """Give ``--config`` values their YAML types back.

    Snakemake parses nested ``--config`` values with YAML's BaseLoader, so ``seeds=[7]`` arrives as
    ``["7"]`` and ``{tau: -1}`` as ``{"tau": "-1"}``. Strings that YAML reads as a number, boolean or null
    become that; every other string stays as it is. Values from config files are already typed.
    """
    if isinstance(value, dict):
        return {k: coerce_cli_scalars(v) for k, v in value.items()}
    if isinstance(value, list):
        return [coerce_cli_scalars(v) for v in value]
    if isinstance(value, str):
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            return value
        if parsed is None or isinstance(parsed, (bool, int, float)):
            return parsed
    return value
