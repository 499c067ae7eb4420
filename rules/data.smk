rule prepare_dataset:
    output:
        clean="results/{dataset}/clean.pt",
    params:
        settings=source_params,
    log:
        "results/logs/{dataset}/prepare_dataset.log",
    script:
        "../workflow_scripts/prepare_dataset.py"


def poison_inputs(wildcards):
    """The clean dataset, and the clean model (rule train_clean) when the attack is built on one."""
    inputs = {"clean": f"results/{wildcards.dataset}/clean.pt"}
    if needs_clean_model(wildcards.attack):
        inputs["clean_model"] = CLEAN_MODEL.format(dataset=wildcards.dataset, seed=wildcards.seed)
    return inputs


def poison_recipe(wildcards):
    """The recipe the clean model was trained with (CleanModel.recipe); None for attacks without one, so a
    recipe change re-runs no BadNet poisoning."""
    return recipe_params(wildcards) if needs_clean_model(wildcards.attack) else None


# Attacks that need no clean model and declare no artifacts (BadNet): one cheap CPU job per run.
SPECIAL_ATTACKS = sorted(a for a in ATTACKS if ATTACKS[a].needs_clean_model or ATTACKS[a].artifact_names)


rule poison_dataset:
    input:
        unpack(poison_inputs),
    output:
        poisoned=RUN + "/poisoned.pt",
        truth=RUN + "/truth.json",
    params:
        attack=attack_params,
        seed=lambda w: int(w.seed),
        recipe=poison_recipe,
        execution=eval_execution,
    wildcard_constraints:
        attack="|".join(a for a in sorted(ATTACKS) if a not in SPECIAL_ATTACKS) or "(?!)",
    log:
        RUN + "/logs/poison_dataset.log",
    script:
        "../workflow_scripts/poison_dataset.py"


# One rule per attack built on the clean model or with artifacts (rule poison_dataset_<attack>): its outputs
# add RUN/artifacts/<name>.{npy,png} for each name in the attack's `artifact_names`, so the DAG knows them; an
# attack that runs the clean model gets resources.poison_dataset (a GPU on a cluster).
for _attack in SPECIAL_ATTACKS:

    rule:
        name:
            f"poison_dataset_{_attack}"
        input:
            unpack(poison_inputs),
        output:
            poisoned=RUN + "/poisoned.pt",
            truth=RUN + "/truth.json",
            **artifact_outputs(_attack),
        params:
            attack=attack_params,
            seed=lambda w: int(w.seed),
            recipe=poison_recipe,
            execution=eval_execution,
        wildcard_constraints:
            attack=_attack,
        threads: res("poison_dataset", "threads") if ATTACKS[_attack].needs_clean_model else 1
        resources:
            **(
                {k: res("poison_dataset", k) for k in ("gpu", "mem_mb", "runtime")}
                if ATTACKS[_attack].needs_clean_model
                else {}
            ),
        log:
            RUN + "/logs/poison_dataset.log",
        benchmark:
            RUN + "/benchmarks/poison_dataset.tsv"
        script:
            "../workflow_scripts/poison_dataset.py"
