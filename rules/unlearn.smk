# Never reads truth.json. The `none` unlearner has no job: it is the poisoned model itself. Flags that do not apply
# (their meta status says why) give the model unchanged.
rule unlearn:
    input:
        model=rules.train_model.output.model,
        poisoned=rules.poison_dataset.output.poisoned,
        flagged=rules.detect.output.flagged,
    output:
        unlearned=RUN + "/unlearned/{detector}/{unlearner}.pt",
    params:
        method=lambda w: unlearner_method(w.unlearner),
        settings=lambda w: unlearner_params(w.unlearner),
        recipe=recipe_params,
        seed=wildcard("seed", int),
        execution=execution(),
    threads: res("unlearn", "threads")
    resources:
        gpu=res("unlearn", "gpu"),
        mem_mb=res("unlearn", "mem_mb"),
        runtime=res("unlearn", "runtime"),
    log:
        RUN + "/logs/unlearn/{detector}/{unlearner}.log",
    script:
        "../workflow_scripts/unlearn.py"
