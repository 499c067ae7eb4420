rule train_model:
    input:
        clean=rules.prepare_dataset.output.clean,
        poisoned=rules.poison_dataset.output.poisoned,
    output:
        model=RUN + "/model.pt",
    params:
        model=model_params,
        recipe=recipe_params,
        seed=lambda w: int(w.seed),
        execution=execution(),
    threads: res("train_model", "threads")
    resources:
        gpu=res("train_model", "gpu"),
        mem_mb=res("train_model", "mem_mb"),
        runtime=res("train_model", "runtime"),
    log:
        RUN + "/logs/train_model.log",
    benchmark:
        RUN + "/benchmarks/train_model.tsv"
    script:
        "../workflow_scripts/train_model.py"


# The scenario's oracle: hand the defender affected test points (reads truth.json; writes no poison index).
rule select_queries:
    input:
        clean=rules.prepare_dataset.output.clean,
        truth=rules.poison_dataset.output.truth,
        model=rules.train_model.output.model,
    output:
        queries=RUN + "/queries.pt",
    params:
        attack=attack_params,
        n_queries=config["queries"]["count"],
        seed=lambda w: int(w.seed),
        execution=eval_execution,
    log:
        RUN + "/logs/select_queries.log",
    script:
        "../workflow_scripts/select_queries.py"
