# What the non-influence detectors read: penultimate features ONCE per trained model (shared by every
# detector with `needs_features`), and the frequency detector's classifier ONCE per dataset, trained on the
# CLEAN training images only (never a poisoned set, independent of the attack and the experiment seed).
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
    log:
        RUN + "/logs/extract_features.log",
    benchmark:
        RUN + "/benchmarks/extract_features.tsv"
    script:
        "../workflow_scripts/extract_features.py"


rule train_frequency:
    input:
        clean=rules.prepare_dataset.output.clean,
    output:
        model=DATASET_MODEL.replace("{name}", "frequency"),
    params:
        settings=dataset_model_params("frequency"),
        execution=execution(),
    threads: res("train_frequency", "threads")
    resources:
        gpu=res("train_frequency", "gpu"),
        mem_mb=res("train_frequency", "mem_mb"),
        runtime=res("train_frequency", "runtime"),
    log:
        "results/logs/{dataset}/train_frequency.log",
    benchmark:
        "results/benchmarks/{dataset}/train_frequency.tsv"
    script:
        "../workflow_scripts/train_frequency.py"
