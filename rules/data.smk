rule prepare_dataset:
    output:
        clean=DATASET_DIR + "/clean.pt",
    params:
        settings=source_params,
    priority: STAGE_PRIORITY["prepare_dataset"]
    log:
        "results/logs/{dataset}/prepare_dataset.log",
    script:
        "../workflow_scripts/prepare_dataset.py"


def poison_inputs(wildcards):
    """The clean dataset, and the clean model (rule train_clean) when the attack is built on one."""
    inputs = {"clean": DATASET_DIR.format(dataset=wildcards.dataset) + "/clean.pt"}
    if needs_clean_model(wildcards.attack):
        inputs["clean_model"] = CLEAN_MODEL.format(dataset=wildcards.dataset, seed=wildcards.seed)
    return inputs


def poison_recipe(wildcards):
    """The recipe the clean model was trained with; None for attacks without one, so a recipe change re-runs no
    BadNet poisoning."""
    return recipe_params(wildcards) if needs_clean_model(wildcards.attack) else None


def poison_resource(key):
    """resources.poison_dataset for attacks that run the clean model (a GPU on a cluster); the defaults otherwise."""
    return lambda w: res("poison_dataset" if needs_clean_model(w.attack) else "default", key)


# The attack's arrays (e.g. the smooth trigger, one poisoned image before/after) land in RUN/artifacts/ as .npy
# and .png; they are never read by detectors or unlearners.
rule poison_dataset:
    input:
        unpack(poison_inputs),
    output:
        poisoned=RUN + "/poisoned.pt",
        truth=RUN + "/truth.json",
        artifacts=report(directory(RUN + "/artifacts"), patterns=["{name}.png"], category="Attack artifacts"),
    params:
        attack=wildcard("attack"),
        attack_settings=attack_params,
        seed=wildcard("seed", int),
        recipe=poison_recipe,
        execution=eval_execution,
    threads: lambda w: res("poison_dataset", "threads") if needs_clean_model(w.attack) else 1
    resources:
        gpu=poison_resource("gpu"),
        mem_mb=poison_resource("mem_mb"),
        runtime=poison_resource("runtime"),
    priority: STAGE_PRIORITY["poison_dataset"]
    log:
        RUN + "/logs/poison_dataset.log",
    script:
        "../workflow_scripts/poison_dataset.py"
