"""Bad configs stop before any job with the key, the value and what is allowed."""

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from unpoison.config import ConfigError, check_config

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
    check_config(copy.deepcopy(DEFAULT))


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"detectors": ["delta_influence", "magic"]}, r"detectors: 'magic' is not a known name; allowed: \[.*'ekfac'"),
        ({"unlearners": ["eu", "forget_me"]}, r"unlearners: 'forget_me' is not a known name; allowed: \[.*'cf'"),
        ({"datasets": ["mnist"]}, r"datasets: 'mnist' is not a known name; allowed: \['digits'\]"),
        ({"attacks": ["sleeper"]}, r"attacks: 'sleeper' is not a known name; allowed: \['badnet'"),
        ({"influence__n_b": 0}, r"influence.n_b: 0 must be a positive integer"),
        ({"detector_settings__delta_influence": {"tau": 0.0, "k": 50}}, r"detector_settings.delta_influence.*k: 50 must satisfy 0 ≤ k < n_b \(influence.n_b = 50\)"),
        ({"dataset_settings__digits__attacks__badnet__count": 500}, r"dataset_settings.digits.attacks.badnet: count: 500 poisons is larger than the smallest class \(\d+ training images\)"),
        ({"dataset_settings__digits__train__epochs_": 3}, r"dataset_settings.digits.train: unknown training keys \['epochs_'\]"),
        ({"influence__factors": {"lamda_max_examples": 10}}, r"influence.factors: unknown influence.factors keys"),
    ],
)
def test_bad_config_names_key_value_and_allowed(changes, message):
    with pytest.raises(ConfigError, match=message):
        check_config(_cfg(**changes))


def test_missing_npz_path_says_where_it_looked(tmp_path):
    cfg = _cfg(datasets=["mine"])
    cfg["dataset_settings"]["mine"] = {**copy.deepcopy(DEFAULT["dataset_settings"]["digits"]), "source": "npz", "path": str(tmp_path / "absent.npz")}
    with pytest.raises(ConfigError, match=r"dataset_settings.mine: npz dataset not found at '.*absent\.npz'"):
        check_config(cfg)


def _dry_run(tmp_path, *args):
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(tmp_path), *args],
        capture_output=True, text=True, timeout=300,
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
        **copy.deepcopy(DEFAULT["dataset_settings"]["digits"]), "source": source, "root": str(tmp_path / "nowhere"), "download": False,
    }
    with pytest.raises(ConfigError, match=rf"dataset_settings.real: .*{tmp_path}/nowhere.*download: true"):
        check_config(cfg)
