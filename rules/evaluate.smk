# The only rules that read truth.json (besides the scenario's query selection). Metrics of a run are computed in
# one job per run (every detector's flags; every model), so the many small evaluations pay one process start.


def run_path(wildcards, pattern, **extra):
    return (RUN + "/" + pattern).format(**wildcards, **extra)


rule evaluate_detection:
    input:
        flagged=lambda w: [run_path(w, f"flagged/{d}.npy") for d in config["detectors"]],
        truth=rules.poison_dataset.output.truth,
    output:
        metrics=[RUN + f"/metrics/detection/{d}.json" for d in config["detectors"]],
    params:
        detectors=config["detectors"],
        ids=run_ids,
    priority: STAGE_PRIORITY["evaluate_detection"]
    log:
        RUN + "/logs/evaluate/detection.log",
    script:
        "../workflow_scripts/evaluate_detection.py"


def evaluate_models_inputs(wildcards):
    """The run's poisoned model and data, every unlearned model with its flags, and the clean model when the grid
    trains one."""
    inputs = {
        "model": run_path(wildcards, "model.pt"),
        "clean": DATASET_DIR.format(dataset=wildcards.dataset) + "/clean.pt",
        "truth": run_path(wildcards, "truth.json"),
        "queries": run_path(wildcards, "queries.pt"),
        "poisoned": run_path(wildcards, "poisoned.pt"),
        "unlearned": [run_path(wildcards, f"unlearned/{d}/{u}.pt") for d, u in unlearn_pairs()],
        "flagged": [run_path(wildcards, f"flagged/{d}.npy") for d, _ in unlearn_pairs()],
    }
    if clean_model_in_grid():
        inputs["clean_model"] = CLEAN_MODEL.format(dataset=wildcards.dataset, seed=wildcards.seed)
    return inputs


rule evaluate_models:
    input:
        unpack(evaluate_models_inputs),
    output:
        poisoned_metrics=RUN + "/metrics/poisoned.json",
        unlearned_metrics=[RUN + f"/metrics/unlearning/{d}/{u}.json" for d, u in unlearn_pairs()],
        **({"clean_model_metrics": RUN + "/metrics/clean_model.json"} if clean_model_in_grid() else {}),
    params:
        attack=wildcard("attack"),
        attack_settings=attack_params,
        ids=run_ids,
        pairs=[list(p) for p in unlearn_pairs()],
        recipe=recipe_params,
        relearning=relearn_settings().to_dict(),
        execution=eval_execution,
    threads: res("evaluate_models", "threads")
    resources:
        gpu=res("evaluate_models", "gpu"),
        mem_mb=res("evaluate_models", "mem_mb"),
        runtime=res("evaluate_models", "runtime"),
    log:
        RUN + "/logs/evaluate/models.log",
    script:
        "../workflow_scripts/evaluate_models.py"


def sweep_inputs(wildcards):
    """The truth and the score files of every detector the sweep varies."""
    probes = {detector_class(d).probe for d in sweep_detectors()}
    return {"truth": run_path(wildcards, "truth.json"),
            **{f"scores_{p}": SCORES_PATH.format(run=RUN.format(**wildcards), probe=p) for p in sorted(probes)}}


# The detectors' threshold sweep from the saved scores (evaluation: reads truth); config `sweep:` holds the grid.
rule sweep_thresholds:
    input:
        unpack(sweep_inputs),
    output:
        sweep=RUN + "/metrics/sweep.csv",
    params:
        grid=sweep_grid().to_dict(),
        detectors={d: {"method": detector_method(d), "settings": detector_params(d)} for d in sweep_detectors()},
        ids=run_ids,
    priority: STAGE_PRIORITY["sweep_thresholds"]
    log:
        RUN + "/logs/evaluate/sweep.log",
    script:
        "../workflow_scripts/sweep_thresholds.py"


# Paper Table 3: retrain without a detector's detected poisons vs without its missed ones. Reads truth BY
# DESIGN (it is an evaluation of what the missed poisons do); detectors still never see truth.json.
rule counterfactual:
    input:
        model=rules.train_model.output.model,
        clean=rules.prepare_dataset.output.clean,
        poisoned=rules.poison_dataset.output.poisoned,
        flagged=rules.detect.output.flagged,
        truth=rules.poison_dataset.output.truth,
    output:
        metrics=RUN + "/metrics/counterfactual/{detector}.json",
    params:
        attack=wildcard("attack"),
        attack_settings=attack_params,
        recipe=recipe_params,
        seed=wildcard("seed", int),
        ids=lambda w: {**run_ids(w), "detector": w.detector},
        execution=eval_execution,
    threads: res("unlearn", "threads")
    resources:
        gpu=res("unlearn", "gpu"),
        mem_mb=res("unlearn", "mem_mb"),
        runtime=res("unlearn", "runtime"),
    priority: STAGE_PRIORITY["counterfactual"]
    log:
        RUN + "/logs/evaluate/counterfactual/{detector}.log",
    script:
        "../workflow_scripts/counterfactual.py"
