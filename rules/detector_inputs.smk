# What the non-influence detectors read: penultimate features ONCE per trained model (shared by every detector that
# reads `features`), and a detector's own model ONCE per dataset (for a detector that reads `dataset_model`),
# trained on the CLEAN training images only (never a poisoned set, independent of the attack and the seed).
rule extract_features:
    input:
        model=rules.train_model.output.model,
        poisoned=rules.poison_dataset.output.poisoned,
    output:
        features=RUN + "/features.pt",
    params:
        execution=eval_execution,
    threads: res("extract_features", "threads")
    resources:
        gpu=res("extract_features", "gpu"),
        mem_mb=res("extract_features", "mem_mb"),
        runtime=res("extract_features", "runtime"),
    priority: STAGE_PRIORITY["extract_features"]
    log:
        RUN + "/logs/extract_features.log",
    script:
        "../workflow_scripts/extract_features.py"


rule train_detector_model:
    input:
        clean=rules.prepare_dataset.output.clean,
    output:
        model=DATASET_DIR + "/detector_models/{detector}.pt",
    params:
        method=lambda w: detector_method(w.detector),
        settings=lambda w: dataset_model_params(w.detector),
        execution=execution(),
    threads: res("train_detector_model", "threads")
    resources:
        gpu=res("train_detector_model", "gpu"),
        mem_mb=res("train_detector_model", "mem_mb"),
        runtime=res("train_detector_model", "runtime"),
    priority: STAGE_PRIORITY["train_detector_model"]
    log:
        "results/logs/{dataset}/train_detector_model/{detector}.log",
    script:
        "../workflow_scripts/train_detector_model.py"
