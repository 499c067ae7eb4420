rule train_model:
    input:
        clean=rules.prepare_dataset.output.clean,
        poisoned=rules.poison_dataset.output.poisoned,
    output:
        model=RUN + "/model.pt",
    params:
        architecture=architecture_params,
        recipe=recipe_params,
        seed=wildcard("seed", int),
        execution=execution(),
    threads: res("train_model", "threads")
    resources:
        gpu=res("train_model", "gpu"),
        mem_mb=res("train_model", "mem_mb"),
        runtime=res("train_model", "runtime"),
    priority: STAGE_PRIORITY["train_model"]
    log:
        RUN + "/logs/train_model.log",
    script:
        "../workflow_scripts/train_model.py"


# The dataset's model trained on its CLEAN training set, once per dataset × seed, for attacks built on a clean
# model (smooth, Witches' Brew) and the clean reference row of the tables; only in grids with such an attack.
rule train_clean:
    input:
        clean=rules.prepare_dataset.output.clean,
    output:
        model=CLEAN_MODEL,
    params:
        architecture=architecture_params,
        recipe=recipe_params,
        seed=wildcard("seed", int),
        execution=execution(),
    threads: res("train_clean", "threads")
    resources:
        gpu=res("train_clean", "gpu"),
        mem_mb=res("train_clean", "mem_mb"),
        runtime=res("train_clean", "runtime"),
    priority: STAGE_PRIORITY["train_clean"]
    log:
        CLEAN_RUN + "/logs/train_clean.log",
    script:
        "../workflow_scripts/train_clean.py"


# The scenario's oracle: hand the defender affected test points (reads truth.json; writes no poison index). Its
# metadata carries the run's status (did the attack take?) that every later stage reads.
rule select_queries:
    input:
        clean=rules.prepare_dataset.output.clean,
        truth=rules.poison_dataset.output.truth,
        model=rules.train_model.output.model,
    output:
        queries=RUN + "/queries.pt",
    params:
        attack=wildcard("attack"),
        attack_settings=attack_params,
        n_queries=config["queries"]["count"],
        seed=wildcard("seed", int),
        execution=eval_execution,
    priority: STAGE_PRIORITY["select_queries"]
    log:
        RUN + "/logs/select_queries.log",
    script:
        "../workflow_scripts/select_queries.py"
