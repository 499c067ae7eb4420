# The only rules that read truth.json (besides the scenario's query selection).
rule evaluate_detection:
    input:
        flagged=rules.detect.output.flagged,  # its meta says when the run's attack failed (detect reads the queries)
        truth=rules.poison_dataset.output.truth,
    output:
        metrics=RUN + "/metrics/detection/{detector}.json",
    log:
        RUN + "/logs/evaluate/{detector}/detection.log",
    script:
        "../workflow_scripts/evaluate_detection.py"


rule evaluate_poisoned:
    input:
        model=rules.train_model.output.model,
        clean=rules.prepare_dataset.output.clean,
        truth=rules.poison_dataset.output.truth,
        queries=rules.select_queries.output.queries,  # whether the attack took (the row's status)
        poisoned=rules.poison_dataset.output.poisoned,  # the stored perturbations (Gaussian Unlearning Score)
    output:
        metrics=RUN + "/metrics/poisoned.json",
    params:
        attack=attack_params,
        execution=eval_execution,
    log:
        RUN + "/logs/evaluate/poisoned.log",
    script:
        "../workflow_scripts/evaluate_model.py"


use rule evaluate_poisoned as evaluate_unlearned with:
    input:
        model=rules.unlearn.output.model,
        clean=rules.prepare_dataset.output.clean,
        truth=rules.poison_dataset.output.truth,
        queries=rules.select_queries.output.queries,
        poisoned=rules.poison_dataset.output.poisoned,
    output:
        metrics=RUN + "/metrics/unlearning/{detector}/{unlearner}.json",
    log:
        RUN + "/logs/evaluate/{detector}/{unlearner}.log",


# The reference row: the model trained on the clean data, evaluated against each attack of the grid (its PSR
# is how often a never-poisoned model already does what the attack wants). Only where train_clean runs.
use rule evaluate_poisoned as evaluate_clean with:
    input:
        model=CLEAN_MODEL,
        clean=rules.prepare_dataset.output.clean,
        truth=rules.poison_dataset.output.truth,
        poisoned=rules.poison_dataset.output.poisoned,
    output:
        metrics=RUN + "/metrics/clean_model.json",
    log:
        RUN + "/logs/evaluate/clean_model.log",


# The τ × k sweep of Δ-Influence and the EK-FAC thresholds from the saved scores (evaluation: reads truth).
rule sweep_thresholds:
    input:
        both=RUN + "/scores/both.pt",
        base=RUN + "/scores/base.pt",
        truth=rules.poison_dataset.output.truth,
    output:
        sweep=RUN + "/metrics/sweep.csv",
    params:
        grid=sweep_grid().to_dict(),
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
        queries=rules.select_queries.output.queries,
    output:
        metrics=RUN + "/metrics/counterfactual/{detector}.json",
    params:
        attack=attack_params,
        recipe=recipe_params,
        seed=lambda w: int(w.seed),
        execution=eval_execution,
    threads: res("unlearn", "threads")
    resources:
        gpu=res("unlearn", "gpu"),
        mem_mb=res("unlearn", "mem_mb"),
        runtime=res("unlearn", "runtime"),
    log:
        RUN + "/logs/evaluate/counterfactual/{detector}.log",
    benchmark:
        RUN + "/benchmarks/counterfactual/{detector}.tsv"
    script:
        "../workflow_scripts/counterfactual.py"
