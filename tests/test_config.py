"""Bad configs stop before any job with the key, the value and what is allowed."""

import copy
import subprocess
from pathlib import Path

import pytest
import yaml
from snakemake_cli import snakemake_cmd

from unpoison.config import ConfigError, validate_config

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = yaml.safe_load((ROOT / "config.yaml").read_text())


def _cfg(**changes):
    cfg = copy.deepcopy(DEFAULT)
    for dotted, value in changes.items():
        node = cfg
        *parents, last = dotted.split("__")
        for key in parents:
            node = node[key]
        node[last] = value
    return cfg


def test_default_config_is_valid():
    validate_config(copy.deepcopy(DEFAULT))


def test_every_shipped_config_is_valid():
    for extra in (
        "tests/configs/tiny.yaml",
        "experiments/cifar10-cpu.yaml",
        "experiments/paper.yaml",
        "experiments/points.yaml",
        "experiments/digits-unlearners.yaml",
        "experiments/ssd-grid.yaml",
    ):
        cfg = copy.deepcopy(DEFAULT)
        _merge(cfg, yaml.safe_load((ROOT / extra).read_text()))
        validate_config(cfg, check_data=False)  # the data of the CPU/GPU experiments are not needed by the tests


def _merge(base, extra):
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v


def _schema_keys(*path):
    node = yaml.safe_load((ROOT / "schemas/config.schema.yaml").read_text())
    for key in path:
        node = node[key]
    return set(node["properties"])


def test_schema_sections_list_exactly_the_settings_classes_fields():
    from unpoison.data import SOURCES
    from unpoison.influence import FactorSettings, ScoreSettings
    from unpoison.params import allowed_keys
    from unpoison.training import TrainRecipe

    assert _schema_keys("$defs", "train") == set(allowed_keys(TrainRecipe))
    assert _schema_keys("properties", "influence", "properties", "factors") == set(allowed_keys(FactorSettings))
    assert _schema_keys("properties", "influence", "properties", "scores") == set(allowed_keys(ScoreSettings))
    source_keys = set().union(*(allowed_keys(fn) for fn in SOURCES.values()))
    dataset_keys = _schema_keys("properties", "dataset_settings", "additionalProperties")
    assert dataset_keys == source_keys | {"source", "model", "train", "attacks"}


def test_normalised_params_are_canonical():
    from unpoison.detectors import DETECTORS

    a = DETECTORS.normalise("delta_influence", {"tau": 0})
    b = DETECTORS.normalise("delta_influence", {"tau": 0.0, "k": 1, "n_points": None})
    assert a == b == {"tau": 0.0, "k": 1, "n_points": None} and isinstance(a["tau"], float)
    assert repr(a) == repr(b)  # what Snakemake's params re-run check compares


def test_recipe_params_leave_out_execution_fields():
    from unpoison.config import normalised_recipe

    slow = normalised_recipe({"epochs": 3, "milestones": [2], "eval_batch_size": 16})
    fast = normalised_recipe({"epochs": 3, "milestones": [2], "eval_batch_size": 4096})
    assert slow == fast and "eval_batch_size" not in slow and slow["lr"] == 0.1


def test_misspelt_source_key_is_rejected_by_the_library():
    cfg = _cfg(dataset_settings__digits__test_fracton=0.3)
    with pytest.raises(ConfigError, match=r"dataset_settings.digits: unknown key\(s\) \['test_fracton'\]"):
        validate_config(cfg)


def test_missing_npz_path_says_where_it_looked(tmp_path):
    cfg = _cfg(datasets=["mine"])
    cfg["dataset_settings"]["mine"] = {**_model_part(), "source": "npz", "path": str(tmp_path / "absent.npz")}
    with pytest.raises(ConfigError, match=r"dataset_settings.mine: npz dataset not found at '.*absent\.npz'"):
        validate_config(cfg)


def _model_part():
    d = copy.deepcopy(DEFAULT["dataset_settings"]["digits"])
    return {k: d[k] for k in ("model", "train", "attacks")}


def _dry_run(tmp_path, *args):
    return subprocess.run(
        snakemake_cmd(tmp_path, *args, dry_run=True),
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["--config", "detectors=[magic]"], "detectors: 'magic' is not a known name"),
        (["--config", "influence={n_b: 0}"], "n_b"),
    ],
)
def test_workflow_refuses_bad_config_before_any_job(tmp_path, args, message):
    proc = _dry_run(tmp_path, *args)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()


def test_cli_strings_get_their_yaml_types_back():
    from unpoison.config import coerce_cli_scalars

    got = coerce_cli_scalars({"seeds": ["7"], "d": {"tau": "-1.5", "k": "2", "n": "null", "on": "true", "name": "eu"}})
    assert got == {"seeds": [7], "d": {"tau": -1.5, "k": 2, "n": None, "on": True, "name": "eu"}}


@pytest.mark.parametrize("source", ["cifar10", "cifar100", "imagenette"])
def test_missing_torchvision_dataset_without_download_fails_naming_path_and_key(tmp_path, source):
    cfg = _cfg(datasets=["real"])
    cfg["dataset_settings"]["real"] = {
        **_model_part(),
        "source": source,
        "root": str(tmp_path / "nowhere"),
        "download": False,
    }
    with pytest.raises(ConfigError, match=rf"dataset_settings.real: .*{tmp_path}/nowhere.*download: true"):
        validate_config(cfg)
