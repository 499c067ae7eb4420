rule make_tables:
    input:
        detection=run_paths("metrics/detection/{detector}.json", detector=config["detectors"]),
        unlearned=unlearning_metrics(),
        poisoned=run_paths("metrics/poisoned.json"),  # the `none` rows, and the poisoned-model reference row
        clean_model=run_paths("metrics/clean_model.json") if clean_model_in_grid() else [],  # clean reference row
    output:
        detection_csv=report("results/tables/detection.csv", caption="../report/detection.rst", category="Tables"),
        unlearning_csv=report("results/tables/unlearning.csv", caption="../report/unlearning.rst", category="Tables"),
        summary_csv=report("results/tables/summary.csv", caption="../report/summary.rst", category="Tables"),
        summary_md="results/tables/summary.md",
    params:
        detectors=config["detectors"],
        with_none=any(not UNLEARNERS[unlearner_method(u)].produces_model for u in config["unlearners"]),
        truth_detectors=[d for d in config["detectors"] if detector_class(d).needs_truth()],
    log:
        "results/logs/make_tables.log",
    script:
        "../workflow_scripts/make_tables.py"


rule make_sweep_table:
    input:
        sweep=run_paths("metrics/sweep.csv", attacks=query_attacks()),
    output:
        sweep_csv=report("results/tables/sweep.csv", caption="../report/sweep.rst", category="Tables"),
    log:
        "results/logs/make_sweep_table.log",
    script:
        "../workflow_scripts/make_sweep_table.py"


rule plot_threshold_sweep:
    input:
        sweep_csv=rules.make_sweep_table.output.sweep_csv,
    output:
        figure=report("results/figures/{dataset}_{attack}_threshold_sweep.png", caption="../report/threshold_sweep.rst", category="Figures"),
    params:
        dataset=wildcard("dataset"),
        attack=wildcard("attack"),
    log:
        "results/logs/figures/{dataset}_{attack}_threshold_sweep.log",
    script:
        "../workflow_scripts/plot_threshold_sweep.py"


rule make_counterfactual_table:
    input:
        counterfactual=run_paths("metrics/counterfactual/{detector}.json", attacks=query_attacks(), detector=counterfactual_detectors()),
    output:
        counterfactual_csv=report("results/tables/counterfactual.csv", caption="../report/counterfactual.rst", category="Tables"),
        counterfactual_md="results/tables/counterfactual.md",
    log:
        "results/logs/make_counterfactual_table.log",
    script:
        "../workflow_scripts/make_counterfactual_table.py"


rule plot_influence_collapse:
    input:
        # every seed: the figure draws the first seed whose attack took (a brew may fail on the first)
        scores=lambda w: [SCORES_PATH.format(run=RUN.format(dataset=w.dataset, attack=w.attack, seed=s), probe=detector_class(w.detector).probe) for s in config["seeds"]],
        truth=[f"results/{{dataset}}/{{attack}}/s{s}/truth.json" for s in config["seeds"]],
    output:
        figure=report("results/figures/{dataset}_{attack}_{detector}_influence_collapse.png", caption="../report/collapse.rst", category="Figures"),
    params:
        seeds=config["seeds"],
        settings=lambda w: detector_params(w.detector),
        dataset=wildcard("dataset"),
        attack=wildcard("attack"),
        detector=wildcard("detector"),
    log:
        "results/logs/figures/{dataset}_{attack}_{detector}_influence_collapse.log",
    script:
        "../workflow_scripts/plot_influence_collapse.py"


rule plot_psr_vs_accuracy:
    input:
        unlearning_csv=rules.make_tables.output.unlearning_csv,
    output:
        figure=report("results/figures/{dataset}_{attack}_psr_vs_accuracy.png", caption="../report/psr_vs_accuracy.rst", category="Figures"),
    params:
        dataset=wildcard("dataset"),
        attack=wildcard("attack"),
        unlearners=trained_unlearners(),
    log:
        "results/logs/figures/{dataset}_{attack}_psr_vs_accuracy.log",
    script:
        "../workflow_scripts/plot_psr_vs_accuracy.py"


rule plot_relearning:
    input:
        unlearning_csv=rules.make_tables.output.unlearning_csv,
    output:
        figure=report("results/figures/{dataset}_{attack}_relearning.png", caption="../report/relearning.rst", category="Figures"),
    params:
        dataset=wildcard("dataset"),
        attack=wildcard("attack"),
    log:
        "results/logs/figures/{dataset}_{attack}_relearning.log",
    script:
        "../workflow_scripts/plot_relearning.py"


# Tables and figures an attack declares (Attack.report_tables): the Gaussian Unlearning Score of the poisoned model
# and of every detector × unlearner, for attacks measured by it (they affect no test point, so no PSR).
rule make_gus_table:
    input:
        poisoned=run_paths("metrics/poisoned.json", attacks=attacks_with_table("gus")),
        unlearned=unlearning_metrics(attacks=attacks_with_table("gus")),
    output:
        gus_csv=report("results/tables/gus.csv", caption="../report/gus.rst", category="Tables"),
        gus_md="results/tables/gus.md",
    log:
        "results/logs/make_gus_table.log",
    script:
        "../workflow_scripts/make_gus_table.py"


rule plot_gus:
    input:
        poisoned=lambda w: [p for p in run_paths("metrics/poisoned.json", attacks=[w.attack]) if p.startswith(f"results/{w.dataset}/")],
        unlearned=lambda w: unlearning_metrics(attacks=[w.attack], dataset=w.dataset),
    output:
        figure=report("results/figures/{dataset}_{attack}_gus.png", caption="../report/gus_figure.rst", category="Figures"),
    params:
        dataset=wildcard("dataset"),
        attack=wildcard("attack"),
    log:
        "results/logs/figures/{dataset}_{attack}_gus.log",
    script:
        "../workflow_scripts/plot_gus.py"


def collapse_figures():
    """(detector, dataset, attack, path) of every influence-collapse figure: each configured detector that declares
    one (a Δ-rule on probe scores), per dataset and attack that affects test points."""
    return [(det, d, a, f"results/figures/{d}_{a}_{det}_influence_collapse.png")
            for det in config["detectors"] if detector_class(det).collapse_figure
            for d in config["datasets"] for a in query_attacks()]


def report_targets():
    """The tables and figures of the configured grid: sweep (when a configured detector sweeps), counterfactual
    (when configured), the attack-declared tables, the collapse and PSR-vs-accuracy figures, the attacks'
    artifacts."""
    targets = [rules.make_tables.output.summary_csv] + [p for *_, p in collapse_figures()]
    targets += [RUN.format(dataset=d, attack=a, seed=s) + "/artifacts" for d, a, s in runs()]
    if trained_unlearners():
        targets += [f"results/figures/{d}_{a}_psr_vs_accuracy.png" for d in config["datasets"] for a in query_attacks()]
        if relearn_settings().enabled:
            targets += [f"results/figures/{d}_{a}_relearning.png" for d in config["datasets"] for a in query_attacks()]
    if sweep_detectors() and query_attacks():
        targets.append(rules.make_sweep_table.output.sweep_csv)
        targets += [f"results/figures/{d}_{a}_threshold_sweep.png" for d in config["datasets"] for a in query_attacks()]
    if counterfactual_detectors():
        targets.append(rules.make_counterfactual_table.output.counterfactual_csv)
    if attacks_with_table("gus"):
        targets.append(rules.make_gus_table.output.gus_csv)
        targets += [f"results/figures/{d}_{a}_gus.png" for d in config["datasets"] for a in attacks_with_table("gus")]
    return targets
