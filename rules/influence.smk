# EK-FAC factors: fitted ONCE per trained model and reused by every probe and detector.
rule fit_ekfac:
    input:
        model=rules.train_model.output.model,
        poisoned=rules.poison_dataset.output.poisoned,
    output:
        factors=directory(RUN + "/ekfac"),
    params:
        settings=factor_settings().science(),
        seed=lambda w: int(w.seed),
        execution=execution(factor_settings()),
    threads: res("fit_ekfac", "threads")
    resources:
        gpu=res("fit_ekfac", "gpu"),
        mem_mb=res("fit_ekfac", "mem_mb"),
        runtime=res("fit_ekfac", "runtime"),
    log:
        RUN + "/logs/fit_ekfac.log",
    benchmark:
        RUN + "/benchmarks/fit_ekfac.tsv"
    script:
        "../workflow_scripts/fit_ekfac.py"


# Base queries + n_b transformed copies for every needed probe, scored in ONE pass over the training set.
rule score_probes:
    input:
        model=rules.train_model.output.model,
        poisoned=rules.poison_dataset.output.poisoned,
        queries=rules.select_queries.output.queries,
        factors=rules.fit_ekfac.output.factors,
    output:
        **{probe: RUN + f"/scores/{probe}.pt" for probe in needed_probes()},
    params:
        n_b=config["influence"]["n_b"],
        settings=score_settings().science(),
        seed=lambda w: int(w.seed),
        execution=execution(score_settings()),
    threads: res("score_probes", "threads")
    resources:
        gpu=res("score_probes", "gpu"),
        mem_mb=res("score_probes", "mem_mb"),
        runtime=res("score_probes", "runtime"),
    log:
        RUN + "/logs/score_probes.log",
    benchmark:
        RUN + "/benchmarks/score_probes.tsv"
    script:
        "../workflow_scripts/score_probes.py"
