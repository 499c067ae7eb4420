# Config access, wildcard constraints and path helpers shared by every stage.
from unpoison.detectors import get_detector
from unpoison.unlearners import UNLEARNERS
from unpoison.config import source_settings

RUN = "results/{dataset}/{attack}/s{seed}"


wildcard_constraints:
    dataset="[A-Za-z0-9_-]+",
    attack="[A-Za-z0-9_-]+",
    seed=r"\d+",
    detector="[A-Za-z0-9_-]+",
    unlearner="[A-Za-z0-9_-]+",


def ds(wildcards):
    """The dataset_settings entry of a job's dataset."""
    return config["dataset_settings"][wildcards.dataset]


def attack_params(wildcards):
    return ds(wildcards)["attacks"][wildcards.attack]


def detector_params(name):
    return config["detector_settings"].get(name, {})


def unlearner_params(name):
    return config["unlearner_settings"].get(name, {})


def res(rule_name, key):
    """A resource of a rule from config['resources'], falling back to resources.default."""
    table = config["resources"]
    return table.get(rule_name, {}).get(key, table["default"].get(key))


def needed_probes():
    """Influence-score files that the configured detectors read (scored together in one pass)."""
    probes = {get_detector(d, detector_params(d)).probe for d in config["detectors"]}
    probes.discard(None)
    return sorted(probes | {"base"})


def trained_unlearners():
    return [u for u in config["unlearners"] if UNLEARNERS[u].produces_model]


def runs():
    """(dataset, attack, seed) of every model in the grid."""
    return [(d, a, s) for d in config["datasets"] for a in config["attacks"] for s in config["seeds"]]


def run_paths(pattern, **extra):
    """Expand a path under RUN for every run in the grid (and the given extra wildcard lists)."""
    from snakemake.io import expand

    return [
        p
        for d, a, s in runs()
        for p in expand(RUN.format(dataset=d, attack=a, seed=s) + "/" + pattern, **extra)
    ]
