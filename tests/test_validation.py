"""Every bad input stops at `snakemake -n`, before any job, with a message naming the key or file.

Each case runs the real Snakefile through Snakemake's Python API as a dry run (the same code path as
`snakemake -n`: the Snakefile validates the config while it is parsed, in the main process), in a fresh
working directory, and asserts that it fails with the expected message and created no `results/`.
Running them in-process keeps ~60 dry runs to seconds; `test_cli_*` check the command-line path itself.
"""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
from snakemake_cli import snakemake_cmd

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "configs" / "tiny.yaml"


def dry_run(workdir: Path, overrides: dict) -> None:
    """`snakemake -n --configfile tests/configs/tiny.yaml --config <overrides>` in-process."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings, StorageSettings

    with SnakemakeApi(OutputSettings(quiet={"all"})) as api:
        workflow = api.workflow(
            resource_settings=ResourceSettings(cores=1),
            config_settings=ConfigSettings(configfiles=[TINY], config=overrides),
            storage_settings=StorageSettings(),
            workdir=workdir,
            snakefile=ROOT / "Snakefile",
        )
        workflow.dag().execute_workflow(executor="dryrun")


def assert_refused(tmp_path: Path, overrides: dict, message: str) -> None:
    workdir = tmp_path / "wd"
    workdir.mkdir(exist_ok=True)
    with pytest.raises(Exception) as info:
        dry_run(workdir, overrides)
    text = str(info.value)
    assert "invalid config" in text, text
    assert message in text, f"expected {message!r} in:\n{text}"
    assert not (workdir / "results").exists()


DIGITS = "dataset_settings"


def digits(**entry) -> dict:
    return {DIGITS: {"digits": entry}}


CONFIG_CASES = {
    # unknown keys, at every level
    "top-level typo": ({"detector_setting": {}}, "(top level): unknown key(s) ['detector_setting']"),
    "top-level typo (seeds)": ({"sedes": [7]}, "unknown key(s) ['sedes']"),
    "dataset typo": (digits(test_fracton=0.3), "dataset_settings.digits: unknown key(s) ['test_fracton']"),
    "key of another source": (
        digits(path="x.npz"),
        "dataset_settings.digits: unknown key(s) ['path']; allowed: ['split_seed', 'test_fraction']",
    ),
    "model typo": (
        digits(model={"name": "digits_cnn", "widht": 8}),
        "dataset_settings.digits.model: unknown key(s) ['widht']",
    ),
    "train typo": (digits(train={"epoch": 3}), "dataset_settings.digits.train: unknown key(s) ['epoch']"),
    "attack typo": (
        digits(attacks={"badnet": {"sise": 3}}),
        "dataset_settings.digits.attacks.badnet: unknown key(s) ['sise']",
    ),
    "detector typo": (
        {"detector_settings": {"delta_influence": {"tua": -1}}},
        "detector_settings.delta_influence: unknown key(s) ['tua']",
    ),
    "unlearner typo": (
        {"unlearner_settings": {"cf": {"epochz": 3}}},
        "unlearner_settings.cf: unknown key(s) ['epochz']",
    ),
    "eu takes no settings": (
        {"unlearner_settings": {"eu": {"epochs": 3}}},
        "unlearner_settings.eu: unknown key(s) ['epochs']; allowed: []",
    ),
    "influence typo": ({"influence": {"nb": 5}}, "influence: unknown key(s) ['nb']"),
    "factors typo": (
        {"influence": {"factors": {"lamda_max_examples": 10}}},
        "influence.factors: unknown key(s) ['lamda_max_examples']",
    ),
    "scores typo": ({"influence": {"scores": {"query_bs": 10}}}, "influence.scores: unknown key(s) ['query_bs']"),
    "queries typo": ({"queries": {"cout": 2}}, "queries: unknown key(s) ['cout']"),
    "resources rule typo": (
        {"resources": {"train_modle": {"threads": 2}}},
        "resources: unknown key(s) ['train_modle']",
    ),
    "resources key typo": ({"resources": {"unlearn": {"thread": 2}}}, "resources.unlearn: unknown key(s) ['thread']"),
    "settings for an unknown detector": (
        {"detector_settings": {"delta_influenc": {}}},
        "detector_settings.delta_influenc: 'delta_influenc' is not a known detector",
    ),
    "settings for an unknown attack": (
        digits(attacks={"badnett": {}}),
        "dataset_settings.digits.attacks: 'badnett' is not a known name",
    ),
    # names
    "unknown detector": ({"detectors": ["magic"]}, "detectors: 'magic' is not a known name"),
    "unknown unlearner": ({"unlearners": ["forget_me"]}, "unlearners: 'forget_me' is not a known name"),
    "unknown attack": ({"attacks": ["sleeper"]}, "attacks: 'sleeper' is not a known name"),
    "unknown dataset": ({"datasets": ["mnist"]}, "datasets: 'mnist' is not a known name; allowed: ['digits']"),
    "unknown source": (digits(source="mnist"), "dataset_settings.digits.source: 'mnist' is not a known source"),
    "unknown model": (digits(model={"name": "vgg"}), "dataset_settings.digits.model.name: 'vgg' is not a known model"),
    "wildcard-unsafe dataset name": (
        {"datasets": ["my.digits"]},
        "datasets.0: name 'my.digits' may hold only letters, digits, '_' and '-'",
    ),
    "duplicate seeds": ({"seeds": [3, 3]}, "seeds: [3, 3] has non-unique elements"),
    "negative seed": ({"seeds": [-1]}, "seeds.0: -1 is less than the minimum of 0"),
    "empty seeds": ({"seeds": []}, "seeds: [] should be non-empty"),
    "duplicate detectors": ({"detectors": ["ekfac", "ekfac"]}, "detectors: ['ekfac', 'ekfac'] has non-unique elements"),
    "empty unlearners": ({"unlearners": []}, "unlearners: [] should be non-empty"),
    "device": ({"device": "gpu"}, "device: 'gpu' does not match"),
    # training recipe: types and ranges
    "lr 0": (
        digits(train={"lr": 0.0}),
        "dataset_settings.digits.train.lr: 0.0 is less than or equal to the minimum of 0",
    ),
    "epochs 0": (digits(train={"epochs": 0}), "dataset_settings.digits.train.epochs: 0 is less than the minimum of 1"),
    "batch_size 0": (
        digits(train={"batch_size": 0}),
        "dataset_settings.digits.train.batch_size: 0 is less than the minimum of 2",
    ),
    "batch_size 1": (
        digits(train={"batch_size": 1}),
        "dataset_settings.digits.train.batch_size: 1 is less than the minimum of 2",
    ),
    "momentum 1": (
        digits(train={"momentum": 1.0}),
        "dataset_settings.digits.train.momentum: 1.0 is greater than or equal to the maximum of 1",
    ),
    "amp": (
        digits(train={"amp": "fp32"}),
        "dataset_settings.digits.train.amp: 'fp32' is not one of ['none', 'bf16', 'fp16']",
    ),
    "lr string": (digits(train={"lr": "fast"}), "dataset_settings.digits.train.lr: 'fast' is not of type 'number'"),
    "milestone after the last epoch": (
        digits(train={"epochs": 12, "milestones": [8, 12]}),
        "dataset_settings.digits.train.milestones: [8, 12] is not allowed",
    ),
    "cf override breaks the recipe": (
        {"unlearners": ["none", "cf"], "unlearner_settings": {"cf": {"epochs": 5}}},
        "unlearner_settings.cf (on dataset_settings.digits.train).milestones: [8] is not allowed",
    ),
    "test_fraction 0": (
        digits(test_fraction=0.0),
        "dataset_settings.digits: sklearn_digits: test_fraction 0.0 must be between",
    ),
    "model width 0": (
        digits(model={"name": "digits_cnn", "width": 0}),
        "dataset_settings.digits.model.width: 0 is not allowed",
    ),
    # influence and detectors
    "n_b 0": ({"influence": {"n_b": 0}}, "influence.n_b: 0 is less than the minimum of 1"),
    "query_batch_size 0": (
        {"influence": {"scores": {"query_batch_size": 0}}},
        "influence.scores.query_batch_size: 0 is less than the minimum of 1",
    ),
    "factor batch 0": (
        {"influence": {"factors": {"batch_size": 0}}},
        "influence.factors.batch_size: 0 is less than the minimum of 1",
    ),
    "lambda_max_examples 0": (
        {"influence": {"factors": {"lambda_max_examples": 0}}},
        "influence.factors.lambda_max_examples: 0 is not allowed; it must be an integer ≥ 1, null (all training points) or auto",
    ),
    "negative damping": (
        {"influence": {"scores": {"damping_factor": -1.0}}},
        "influence.scores.damping_factor: -1.0 is less than the minimum of 0",
    ),
    "tau nan": (
        {"detector_settings": {"delta_influence": {"tau": float("nan")}}},
        "detector_settings.delta_influence.tau: nan must be a finite number",
    ),
    "tau inf": (
        {"detector_settings": {"delta_influence": {"tau": float("-inf")}}},
        "detector_settings.delta_influence.tau: -inf must be a finite number",
    ),
    "tau string": (
        {"detector_settings": {"delta_influence": {"tau": "low"}}},
        "detector_settings.delta_influence.tau: 'low' must be a finite number",
    ),
    "threshold nan": (
        {"detector_settings": {"ekfac": {"threshold": float("nan")}}},
        "detector_settings.ekfac.threshold: nan must be a finite number",
    ),
    "k = n_b": (
        {"detector_settings": {"delta_influence": {"k": 6}}},
        "detector_settings.delta_influence.k: 6 must satisfy 0 ≤ k < n_b (influence.n_b = 6)",
    ),
    "k negative": (
        {"detector_settings": {"delta_influence": {"k": -1}}},
        "detector_settings.delta_influence.k: -1 is not allowed",
    ),
    "k fractional": (
        {"detector_settings": {"delta_influence": {"k": 1.5}}},
        "detector_settings.delta_influence.k: 1.5 must be an integer",
    ),
    "n_points 0": (
        {"detector_settings": {"delta_influence": {"n_points": 0}}},
        "detector_settings.delta_influence.n_points: 0 is not allowed",
    ),
    "n_points > queries": (
        {"detector_settings": {"ekfac": {"n_points": 2}}},
        "detector_settings.ekfac.n_points: 2 test points requested but queries.count = 1",
    ),
    "sweep typo": ({"sweep": {"tau": [0.0]}}, "sweep: unknown key(s) ['tau']"),
    "sweep over more points than scored": ({"sweep": {"n_points": 3}}, "sweep.n_points: 3 exceeds queries.count = 1"),
    "unlearn_on of an unknown unlearner": (
        {"unlearn_on": {"scrubb": ["delta_influence"]}},
        "unlearn_on: 'scrubb' is not a known unlearner",
    ),
    "unlearn_on with an unknown detector": (
        {"unlearn_on": {"scrub": ["ekfak"]}},
        "unlearn_on.scrub: 'ekfak' is not a known detector",
    ),
    "counterfactual of an unknown detector": (
        {"counterfactual": ["delta_influense"]},
        "counterfactual: 'delta_influense' is not a known detector",
    ),
    # named variants of a registered method
    "variant of an unknown method": (
        {"detectors": ["ekfac", "di5"], "detector_settings": {"di5": {"method": "delta_influense"}}},
        "detector_settings.di5: method 'delta_influense' of 'di5' is not a known detector",
    ),
    "variant without a method": ({"detectors": ["ekfac", "di5"]}, "detectors: 'di5' is not a known name"),
    "registered name pointed elsewhere": (
        {"detector_settings": {"ekfac": {"method": "delta_influence"}}},
        "'ekfac' is a registered detector itself",
    ),
    "variant with a bad setting": (
        {"detectors": ["ekfac", "di5"], "detector_settings": {"di5": {"method": "delta_influence", "k": 6}}},
        "detector_settings.di5.k: 6 must satisfy 0 ≤ k < n_b",
    ),
    "cf variant breaks the recipe": (
        {"unlearners": ["none", "cf_short"], "unlearner_settings": {"cf_short": {"method": "cf", "epochs": 5}}},
        "unlearner_settings.cf_short (on dataset_settings.digits.train).milestones: [8] is not allowed",
    ),
    "eps 0": (
        {"detector_settings": {"spectral_signatures": {"eps": 0}}},
        "detector_settings.spectral_signatures.eps: 0.0 is not allowed; it must be in (0, 1)",
    ),
    "eps 1.5": (
        {"detector_settings": {"spectral_signatures": {"eps": 1.5}}},
        "detector_settings.spectral_signatures.eps: 1.5 is not allowed; it must be in (0, 1)",
    ),
    "eps string": (
        {"detector_settings": {"spectral_signatures": {"eps": "5%"}}},
        "detector_settings.spectral_signatures.eps: '5%' must be a finite number",
    ),
    "n_components 0": (
        {"detector_settings": {"activation_clustering": {"n_components": 0}}},
        "detector_settings.activation_clustering.n_components: 0 is not allowed; it must be ≥ 1",
    ),
    "n_components fractional": (
        {"detector_settings": {"activation_clustering": {"n_components": 2.5}}},
        "detector_settings.activation_clustering.n_components: 2.5 must be an integer",
    ),
    "frequency threshold nan": (
        {"detector_settings": {"frequency": {"threshold": float("nan")}}},
        "detector_settings.frequency.threshold: nan must be a finite number",
    ),
    "frequency threshold 0": (
        {"detector_settings": {"frequency": {"threshold": 0}}},
        "detector_settings.frequency.threshold: 0.0 is not allowed; it must be in (0, 1]",
    ),
    "frequency epochs 0": (
        {"detector_settings": {"frequency": {"epochs": 0}}},
        "detector_settings.frequency.epochs: 0 is not allowed; it must be ≥ 1",
    ),
    "frequency lr 0": (
        {"detector_settings": {"frequency": {"lr": 0}}},
        "detector_settings.frequency.lr: 0.0 is not allowed; it must be > 0",
    ),
    "frequency typo": (
        {"detector_settings": {"frequency": {"treshold": 0.5}}},
        "detector_settings.frequency: unknown key(s) ['treshold']; allowed: ['epochs', 'lr', 'seed', 'threshold']",
    ),
    "spectral typo": (
        {"detector_settings": {"spectral_signatures": {"epsilon": 0.1}}},
        "detector_settings.spectral_signatures: unknown key(s) ['epsilon']; allowed: ['eps']",
    ),
    "resources of a new rule": (
        {"resources": {"train_detector_model": {"gpus": 1}}},
        "resources.train_detector_model: unknown key(s) ['gpus']",
    ),
    # attack parameters against the images and the class sizes
    "trigger value 300": (
        digits(attacks={"badnet": {"value": 300}}),
        "dataset_settings.digits.attacks.badnet.value: 300 is not allowed; it must be a pixel value in 0..255",
    ),
    "trigger size 9 on 8×8": (
        digits(attacks={"badnet": {"size": 9}}),
        "dataset_settings.digits.attacks.badnet.size: 9 is not allowed; it must be such that size + margin (9 px) fits the 8-px images",
    ),
    "poison count above the smallest class": (
        digits(attacks={"badnet": {"count": 500}}),
        "dataset_settings.digits.attacks.badnet.count: 500 is not allowed; it must be ≤ 139",
    ),
    # the smooth attack (checked against the images only when it is in the grid)
    "smooth magnitude 0": (
        digits(attacks={"smooth": {"magnitude": 0}}),
        "dataset_settings.digits.attacks.smooth.magnitude: 0.0 is not allowed; it must be in (0, 1]",
    ),
    "smooth magnitude in pixel units": (
        digits(attacks={"smooth": {"magnitude": 51}}),
        "dataset_settings.digits.attacks.smooth.magnitude: 51.0 is not allowed; it must be in (0, 1]",
    ),
    "smooth sigma 0": (
        digits(attacks={"smooth": {"sigma": 0}}),
        "dataset_settings.digits.attacks.smooth.sigma: 0.0 is not allowed; it must be > 0",
    ),
    "smooth passes fractional": (
        digits(attacks={"smooth": {"passes": 1.5}}),
        "dataset_settings.digits.attacks.smooth.passes: 1.5 must be an integer",
    ),
    "smooth typo": (
        digits(attacks={"smooth": {"magnitud": 0.2}}),
        "dataset_settings.digits.attacks.smooth: unknown key(s) ['magnitud']; allowed: ['count', 'deepfool_steps', 'magnitude', 'n_images', 'passes', 'sigma']",
    ),
    "smooth sigma of 32-px images on 8×8": (
        {"attacks": ["smooth"], **digits(attacks={"smooth": {"sigma": 6.0}})},
        "dataset_settings.digits.attacks.smooth.sigma: 6.0 is not allowed; it must be small enough that the 31-tap blur kernel's half-width (15 px) is below the 8-px image side",
    ),
    "smooth count above the smallest class": (
        {"attacks": ["smooth"], **digits(attacks={"smooth": {"count": 500}})},
        "dataset_settings.digits.attacks.smooth.count: 500 is not allowed; it must be ≤ 139",
    ),
    "smooth without settings": (
        {"attacks": ["badnet", "smooth"], **digits(attacks={"badnet": {}, "smooth": None})},
        "dataset_settings.digits.attacks.smooth",
    ),
    "smooth search images above the smallest class": (
        {"attacks": ["smooth"], **digits(attacks={"smooth": {"count": 40, "sigma": 1.5, "n_images": 500}})},
        "dataset_settings.digits.attacks.smooth.n_images: 500 is not allowed; it must be ≤ 139",
    ),
    "resources of train_clean": (
        {"resources": {"train_clean": {"gpus": 1}}},
        "resources.train_clean: unknown key(s) ['gpus']",
    ),
    "queries.count 0": ({"queries": {"count": 0}}, "queries.count: 0 is less than the minimum of 1"),
    "more queries than affected test images": (
        {"queries": {"count": 40}},
        "queries.count: 40 affected test points requested, but the smallest class has only 35 test images",
    ),
}


@pytest.mark.parametrize("overrides, message", CONFIG_CASES.values(), ids=CONFIG_CASES.keys())
def test_bad_config_is_refused_before_any_job(tmp_path, overrides, message):
    assert_refused(tmp_path, overrides, message)


def test_detectors_outside_the_grid_are_type_checked_but_not_held_to_n_b(tmp_path):
    """n_b = 1 with k = 0 for the Δ-Influence rules in the grid: the default settings of detectors NOT in the grid
    (delta_influence_contrast, k = 1) do not stop the run; the same settings in the grid do; a type error outside
    the grid still does."""
    base = {"influence": {"n_b": 1}, "detector_settings": {"delta_influence": {"k": 0}}, "unlearners": ["none"]}
    dry_run(tmp_path, {**base, "detectors": ["delta_influence"]})
    assert_refused(
        tmp_path,
        {**base, "detectors": ["delta_influence", "delta_influence_contrast"]},
        "detector_settings.delta_influence_contrast.k: 1 must satisfy 0 ≤ k < n_b",
    )
    typo = {"detector_settings": {"delta_influence": {"k": 0}, "delta_influence_contrast": {"tau": "low"}}}
    assert_refused(
        tmp_path,
        {**base, **typo, "detectors": ["delta_influence"]},
        "detector_settings.delta_influence_contrast.tau: 'low' must be a finite number",
    )


def _arrays(n_train=40, n_test=12, shape=(8, 8, 3), classes=4) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "x_train": rng.integers(0, 256, (n_train, *shape), dtype=np.uint8),
        "y_train": np.arange(n_train) % classes,
        "x_test": rng.integers(0, 256, (n_test, *shape), dtype=np.uint8),
        "y_test": np.arange(n_test) % classes,
        "classes": np.array([f"c{i}" for i in range(classes)]),
    }


def _corrupt(name: str, a: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    if name == "missing array":
        a.pop("y_test")
    elif name == "float images":
        a["x_train"] = a["x_train"].astype(np.float32)
    elif name == "NCHW images":
        a["x_train"] = a["x_train"].transpose(0, 3, 1, 2).copy()
        a["x_test"] = a["x_test"].transpose(0, 3, 1, 2).copy()
    elif name == "5 channels":
        a["x_train"] = np.zeros((40, 8, 8, 5), np.uint8)
    elif name == "label out of range":
        a["y_train"][3] = 4
    elif name == "negative label":
        a["y_test"][0] = -1
    elif name == "float labels":
        a["y_train"] = a["y_train"].astype(np.float64)
    elif name == "empty test set":
        a["x_test"], a["y_test"] = a["x_test"][:0], a["y_test"][:0]
    elif name == "train/test shapes differ":
        a["x_test"] = np.zeros((12, 9, 9, 3), np.uint8)
    elif name == "labels shorter than images":
        a["y_train"] = a["y_train"][:30]
    return a


DATA_CASES = {
    "missing array": "missing arrays ['y_test']",
    "float images": "array 'x_train' must be uint8 (0..255), got float32",
    "NCHW images": "it looks like N×C×H×W: store it as N×H×W×C",
    "5 channels": "has 5 channels in its last axis; only 1 (grayscale) or 3 (RGB)",
    "label out of range": "label 4 is out of range for the 4 class names given",
    "negative label": "labels must be ≥ 0 (class indices), found -1",
    "float labels": "array 'y_train' must be a 1-D array of integer class labels, got float64",
    "empty test set": "x_test is empty",
    "train/test shapes differ": "x_train images are (3, 8, 8) (C×H×W) but x_test images are (3, 9, 9)",
    "labels shorter than images": "images and labels differ in length (train 40 vs 30",
    "truncated file": "unreadable as a .npz dataset",
    "not a zip": "unreadable as a .npz dataset",
    "absent file": "npz dataset not found at",
}


def _npz_config(path: Path) -> dict:
    entry = {
        "source": "npz",
        "path": str(path),
        "model": {"name": "digits_cnn", "width": 4},
        "train": {"epochs": 2, "milestones": [1]},
        "attacks": {"badnet": {"count": 2, "pattern": "checkerboard", "size": 2, "value": 255, "margin": 0}},
    }
    return {"datasets": ["mine"], DIGITS: {"mine": entry}}


@pytest.mark.parametrize("case", DATA_CASES, ids=DATA_CASES.keys())
def test_bad_data_file_is_refused_before_any_job_naming_the_file(tmp_path, case):
    path = tmp_path / "data.npz"
    if case == "truncated file":
        np.savez(path, **_arrays())
        path.write_bytes(path.read_bytes()[:300])
    elif case == "not a zip":
        path.write_text("these are not the arrays you are looking for")
    elif case != "absent file":
        np.savez(path, **_corrupt(case, _arrays()))
    assert_refused(tmp_path, _npz_config(path), "dataset_settings.mine: ")
    assert_refused(tmp_path, _npz_config(path), DATA_CASES[case])
    assert_refused(tmp_path, _npz_config(path), str(path))


def test_a_valid_npz_passes_the_same_checks(tmp_path):
    path = tmp_path / "data.npz"
    np.savez(path, **_arrays())
    dry_run(tmp_path, _npz_config(path))  # no exception
    assert zipfile.is_zipfile(path)


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = snakemake_cmd(tmp_path, *args, configfiles=[TINY], dry_run=True)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--config", "sedes=[7]"], "unknown key(s) ['sedes']"),
        (
            ["--config", "detector_settings={delta_influence: {tau: .nan}}"],
            "detector_settings.delta_influence.tau: nan must be a finite number",
        ),
    ],
)
def test_cli_bad_config_is_refused_before_any_job(tmp_path, args, message):
    proc = _cli(tmp_path, *args)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()
