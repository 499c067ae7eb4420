# The only rules that read truth.json (besides the scenario's query selection).
rule evaluate_detection:
    input:
        flagged=rules.detect.output.flagged,
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
    output:
        metrics=RUN + "/metrics/unlearning/{detector}/{unlearner}.json",
    log:
        RUN + "/logs/evaluate/{detector}/{unlearner}.log",
