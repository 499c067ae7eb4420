"""Semantic checks of a workflow config, run by the Snakefile before any job (after the JSON schema).

Every error names the key, the value and what is allowed, so a bad config fails in a second instead of
an hour into the grid. Names are checked against the registries, so new methods need no edit here.
"""

from __future__ import annotations

from typing import Any

from unpoison.attacks import ATTACKS, get_attack
from unpoison.data import SOURCES, DatasetError, train_class_counts
from unpoison.detectors import DETECTORS, get_detector
from unpoison.device import resolve_device
from unpoison.influence import FactorSettings, ScoreSettings
from unpoison.models import MODELS
from unpoison.training import TrainRecipe
from unpoison.unlearners import UNLEARNERS


class ConfigError(ValueError):
    """The configuration is invalid; the message says which key, which value and what is allowed."""


def _known(key: str, names: list[str], allowed: Any) -> None:
    for name in names:
        if name not in allowed:
            raise ConfigError(f"{key}: {name!r} is not a known name; allowed: {sorted(allowed)}")


def _wrap(key: str, fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except ConfigError:
        raise
    except (ValueError, TypeError, DatasetError) as err:
        raise ConfigError(f"{key}: {err}") from err


def check_config(config: dict[str, Any], check_data: bool = True) -> None:
    """Raise :class:`ConfigError` if ``config`` cannot run.

    Args:
        config: the merged Snakemake config (already schema-validated).
        check_data: also look at the datasets (file present, class sizes vs poison counts).
    """
    _known("datasets", config["datasets"], config.get("dataset_settings", {}))
    _known("attacks", config["attacks"], ATTACKS)
    _known("detectors", config["detectors"], DETECTORS)
    _known("unlearners", config["unlearners"], UNLEARNERS)
    _wrap("device", resolve_device, config.get("device", "auto"))

    influence = config["influence"]
    n_b = influence["n_b"]
    if not isinstance(n_b, int) or n_b <= 0:
        raise ConfigError(f"influence.n_b: {n_b!r} must be a positive integer (the reference uses 50)")
    _wrap("influence.factors", FactorSettings.from_dict, influence.get("factors"))
    _wrap("influence.scores", ScoreSettings.from_dict, influence.get("scores"))

    for name in config["detectors"]:
        key = f"detector_settings.{name}"
        det = _wrap(key, get_detector, name, config["detector_settings"].get(name, {}))
        _wrap(key, det.check, n_b)
        n_points = det.params.get("n_points")
        if n_points is not None and n_points > config["queries"]["count"]:
            raise ConfigError(f"{key}.n_points: {n_points} exceeds queries.count = {config['queries']['count']}")

    for name in config["unlearners"]:
        params = config["unlearner_settings"].get(name, {})
        _wrap(f"unlearner_settings.{name}", UNLEARNERS[name], **params)
        if name == "cf":
            _wrap("unlearner_settings.cf", TrainRecipe.from_dict, params)

    for ds in config["datasets"]:
        settings = config["dataset_settings"][ds]
        key = f"dataset_settings.{ds}"
        if settings["source"] not in SOURCES:
            raise ConfigError(f"{key}.source: {settings['source']!r} is not a known source; allowed: {sorted(SOURCES)}")
        if settings["model"]["name"] not in MODELS:
            raise ConfigError(f"{key}.model.name: {settings['model']['name']!r} is not a known model; allowed: {sorted(MODELS)}")
        _wrap(f"{key}.train", TrainRecipe.from_dict, settings["train"])
        counts = _wrap(key, train_class_counts, source_settings(settings)) if check_data else None
        for attack in config["attacks"]:
            if attack not in settings["attacks"]:
                raise ConfigError(
                    f"{key}.attacks: no settings for attack {attack!r}; add `{attack}: {{...}}` (e.g. its poison count)"
                )
            akey = f"{key}.attacks.{attack}"
            instance = _wrap(akey, get_attack, attack, settings["attacks"][attack])
            _wrap(akey, instance.check, counts)


SOURCE_EXCLUDED = ("model", "train", "attacks")


def source_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The part of a ``dataset_settings`` entry that the data loader reads (source, path, split...)."""
    return {k: v for k, v in settings.items() if k not in SOURCE_EXCLUDED}


def coerce_cli_scalars(value: Any) -> Any:
    """Give ``--config`` values their YAML types back.

    Snakemake parses nested ``--config`` values with YAML's BaseLoader, so ``seeds=[7]`` arrives as
    ``["7"]`` and ``{tau: -1}`` as ``{"tau": "-1"}``. Strings that YAML reads as a number, boolean or null
    become that; every other string stays as it is. Values from config files are already typed.
    """
    import yaml

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
