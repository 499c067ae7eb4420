rule prepare_dataset:
    output:
        clean="results/{dataset}/clean.pt",
    params:
        settings=source_params,
    log:
        "results/logs/{dataset}/prepare_dataset.log",
    script:
        "../workflow_scripts/prepare_dataset.py"


rule poison_dataset:
    input:
        clean=rules.prepare_dataset.output.clean,
    output:
        poisoned=RUN + "/poisoned.pt",
        truth=RUN + "/truth.json",
    params:
        attack=attack_params,
        seed=lambda w: int(w.seed),
    log:
        RUN + "/logs/poison_dataset.log",
    script:
        "../workflow_scripts/poison_dataset.py"
