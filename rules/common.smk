# Config access, wildcard constraints and path helpers shared by every stage. Every params: value comes
# from a normalised_* helper (complete, canonical numbers) and execution-only settings travel in one
# Execution object, so a job re-runs only when its science changes (unpoison.config, unpoison.execution).
from unpoison.attacks import ATTACKS
from unpoison.config import normalised_model, normalised_recipe, normalised_source
from unpoison.detectors import DETECTORS
from unpoison.detectors.inputs import SCORES_PATH, input_path
from unpoison.execution import Execution
from unpoison.influence import FactorSettings, ScoreSettings
from unpoison.relearn import RelearnSettings
from unpoison.training import TrainRecipe
from unpoison.sweep import SweepGrid
from unpoison.unlearners import UNLEARNERS

RUN = "results/{dataset}/{attack}/s{seed}"
# The model trained on the CLEAN training set, one per dataset × seed (rule train_clean). `clean` is never an
# attack wildcard (only registered attacks are), so this path is not RUN + "/model.pt" of a run.
CLEAN_RUN = "results/{dataset}/clean/s{seed}"
CLEAN_MODEL = CLEAN_RUN + "/model.pt"
assert "clean" not in ATTACKS, "'clean' names the clean-model directory; register the attack under another name"
DATASET_DIR = "results/{dataset}"
DEVICE = config.get("device", "auto")
SHARDS = int(config["influence"].get("shards", 1))  # K jobs per influence pass (rules/influence_shards.smk)
# Scheduling only (no result depends on it): the chain from the data to a run's flags goes first, then the
# evaluation steps that need no unlearned model, so that every run reaches its many independent unlearning jobs
# early and the workflow ends with them running side by side, not with one run's chain alone on a core (default
# run: BENCHMARKS.md, "Default run").
STAGE_PRIORITY = {
    "prepare_dataset": 9, "poison_dataset": 8, "train_clean": 8, "train_model": 7, "train_detector_model": 7,
    "select_queries": 6, "select_controls": 6, "extract_features": 6, "fit_covariance_shard": 5,
    "aggregate_covariance": 5, "fit_lambda_shard": 5, "fit_ekfac": 5, "score_shard": 4, "score_probes": 4, "detect": 3,
    "counterfactual": 2, "sweep_thresholds": 1, "evaluate_detection": 1,
}


# dataset, attack, detector: exactly the configured or registered names, so that names joined by "_"
# (results/figures/{dataset}_{attack}_{detector}_*.png) split one way only: with free patterns,
# digits_witches_brew would also read as dataset digits_witches, attack brew. Names are validated as
# [A-Za-z0-9_-]+ (no regex characters).
wildcard_constraints:
    dataset="|".join(sorted(config["dataset_settings"], key=len, reverse=True)),
    attack="|".join(sorted(ATTACKS, key=len, reverse=True)),
    seed=r"\d+",
    shard=r"\d+",
    detector="|".join(sorted(set(config["detectors"]) | set(config["detector_settings"]) | set(DETECTORS), key=len, reverse=True)),
    unlearner="[A-Za-z0-9_-]+",


def ds(wildcards):
    """The dataset_settings entry of a job's dataset."""
    return config["dataset_settings"][wildcards.dataset]


def source_params(wildcards):
    return normalised_source(ds(wildcards))


def architecture_params(wildcards):
    return normalised_model(ds(wildcards)["model"])


def recipe_params(wildcards):
    """The dataset's training recipe without its execution-only fields."""
    return normalised_recipe(ds(wildcards)["train"])


def attack_params(wildcards):
    return ATTACKS.normalise(wildcards.attack, ds(wildcards)["attacks"][wildcards.attack])


def needs_clean_model(attack):
    """Whether an attack is built on the clean model (its poison job then reads CLEAN_MODEL)."""
    return ATTACKS[attack].needs_clean_model


def clean_model_in_grid():
    """train_clean runs (one per dataset × seed) only when some attack of the grid needs the clean model; the
    clean reference row of the tables comes with it."""
    return any(needs_clean_model(a) for a in config["attacks"])


def detector_method(name):
    """The registered detector a configured name runs (itself, or a variant's `method:`)."""
    return DETECTORS.method_of(name, config["detector_settings"].get(name))


def detector_params(name):
    settings = config["detector_settings"].get(name, {})
    return DETECTORS.normalise(detector_method(name), DETECTORS.variant_params(settings))


def unlearner_method(name):
    return UNLEARNERS.method_of(name, config["unlearner_settings"].get(name))


def detector_class(name):
    return DETECTORS[detector_method(name)]


def dataset_model_params(name):
    """The settings of detector ``name`` that determine its per-dataset model (a change re-trains it)."""
    params = detector_params(name)
    return {k: params[k] for k in DETECTORS[detector_method(name)].dataset_model_fields}


def unlearner_params(name):
    settings = config["unlearner_settings"].get(name, {})
    return UNLEARNERS.normalise(unlearner_method(name), UNLEARNERS.variant_params(settings))


def factor_settings():
    return FactorSettings.from_dict(config["influence"].get("factors"))


def score_settings():
    return ScoreSettings.from_dict(config["influence"].get("scores"))


def counterfactual_detectors():
    """The detectors of `counterfactual:` that are in this grid (the default lists delta_influence); none when no
    attack of the grid affects test points (the counterfactual measures PSR)."""
    if not any(ATTACKS[a].affects_test for a in config["attacks"]):
        return []
    return [d for d in config.get("counterfactual", []) if d in config["detectors"]]


def sweep_grid():
    return SweepGrid.from_dict(config.get("sweep"))


def sweep_detectors():
    """The configured detectors the threshold sweep varies: those whose method declares sweep_params, once per
    method and fixed settings (a variant that differs only in a swept setting or n_points adds nothing)."""
    chosen, seen = [], set()
    for name in config["detectors"]:
        cls = detector_class(name)
        if not cls.sweep_params:
            continue
        fixed = {k: v for k, v in detector_params(name).items() if k not in cls.sweep_params and k != "n_points"}
        key = (detector_method(name), repr(sorted(fixed.items())))
        if key not in seen:
            seen.add(key)
            chosen.append(name)
    return chosen


def relearn_settings():
    return RelearnSettings.from_dict(config.get("relearning"))


def execution(settings=None):
    """Device plus the execution-only keys of a settings object (never part of the re-run check)."""
    return Execution(DEVICE, settings.execution() if settings is not None else {})


def eval_execution(wildcards):
    """Device and inference batch size of a dataset's recipe, for rules that only predict."""
    return Execution(DEVICE, TrainRecipe.from_dict(ds(wildcards)["train"]).execution())


def res(rule_name, key):
    """A resource of a rule from config['resources'], falling back to resources.default."""
    table = config["resources"]
    return table.get(rule_name, {}).get(key, table["default"].get(key))


def needed_probes():
    """Influence-score files that the configured detectors read (scored together in one pass)."""
    probes = {detector_class(d).probe for d in config["detectors"]}
    probes.discard(None)
    return sorted(probes | {"base"})


def needed_control_probes():
    """Probes the configured detectors also read for the control queries (``controls_<probe>`` score files)."""
    return sorted({detector_class(d).control_probe for d in config["detectors"]} - {None})


def run_ids(wildcards):
    """The (dataset, attack, seed) of a job's run, for the rows it writes."""
    return {"dataset": wildcards.dataset, "attack": wildcards.attack, "seed": int(wildcards.seed)}


def wildcard(name, cast=str):
    """A params: function returning one wildcard's value."""
    return lambda w: cast(w[name])


def trained_unlearners():
    return [u for u in config["unlearners"] if UNLEARNERS[unlearner_method(u)].produces_model]


def unlearn_pairs():
    """(detector, unlearner) pairs the grid unlearns: every detector × every trained unlearner, except that
    `unlearn_on: {unlearner: [detectors]}` narrows an unlearner to those detectors."""
    on = config.get("unlearn_on") or {}
    return [(d, u) for u in trained_unlearners() for d in config["detectors"] if u not in on or d in on[u]]


def unlearning_metrics(attacks=None, dataset=None):
    """metrics/unlearning/{detector}/{unlearner}.json of every run (of ``attacks`` / ``dataset`` when given) and
    every pair of :func:`unlearn_pairs`."""
    return [
        RUN.format(dataset=d, attack=a, seed=s) + f"/metrics/unlearning/{det}/{u}.json"
        for d, a, s in runs()
        if (attacks is None or a in attacks) and (dataset is None or d == dataset)
        for det, u in unlearn_pairs()
    ]


def runs():
    """(dataset, attack, seed) of every model in the grid."""
    return [(d, a, s) for d in config["datasets"] for a in config["attacks"] for s in config["seeds"]]


def run_paths(pattern, attacks=None, **extra):
    """Expand a path under RUN for every run in the grid (only those of ``attacks`` when given; and the given
    extra wildcard lists)."""
    from snakemake.io import expand

    return [
        p
        for d, a, s in runs()
        if attacks is None or a in attacks
        for p in expand(RUN.format(dataset=d, attack=a, seed=s) + "/" + pattern, **extra)
    ]


def query_attacks():
    """The grid's attacks that affect test points (a query, PSR, influence figures and the sweep apply)."""
    return [a for a in config["attacks"] if ATTACKS[a].affects_test]


def attacks_with_table(kind):
    """The grid's attacks that declare a report table of this kind (e.g. ``gus``: the Gaussian Unlearning Score)."""
    return [a for a in config["attacks"] if kind in ATTACKS[a].report_tables]
