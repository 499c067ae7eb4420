rule make_tables:
    input:
        detection=run_paths("metrics/detection/{detector}.json", detector=config["detectors"]),
        unlearned=unlearning_metrics(),
        poisoned=run_paths("metrics/poisoned.json"),  # the `none` rows, and the poisoned-model reference row
        clean_model=run_paths("metrics/clean_model.json") if clean_model_in_grid() else [],  # clean reference row
    output:
        detection=report("results/tables/detection.csv", caption="../report/detection.rst", category="Tables"),
        unlearning=report("results/tables/unlearning.csv", caption="../report/unlearning.rst", category="Tables"),
        summary=report("results/tables/summary.csv", caption="../report/summary.rst", category="Tables"),
        markdown="results/tables/summary.md",
    params:
        detectors=config["detectors"],
        with_none="none" in config["unlearners"],
        truth_detectors=[d for d in config["detectors"] if DETECTORS[detector_method(d)].needs_truth],
    log:
        "results/logs/make_tables.log",
    script:
        "../workflow_scripts/make_tables.py"


rule make_sweep_table:
    input:
        sweep=run_paths("metrics/sweep.csv", attacks=query_attacks()),
    output:
        sweep=report("results/tables/sweep.csv", caption="../report/sweep.rst", category="Tables"),
    log:
        "results/logs/make_sweep_table.log",
    script:
        "../workflow_scripts/make_sweep_table.py"


rule plot_threshold_sweep:
    input:
        sweep=rules.make_sweep_table.output.sweep,
    output:
        figure=report("results/figures/{dataset}_{attack}_threshold_sweep.png", caption="../report/threshold_sweep.rst", category="Figures"),
    log:
        "results/logs/figures/{dataset}_{attack}_threshold_sweep.log",
    script:
        "../workflow_scripts/plot_threshold_sweep.py"


rule make_counterfactual_table:
    input:
        counterfactual=run_paths("metrics/counterfactual/{detector}.json", attacks=query_attacks(), detector=counterfactual_detectors()),
    output:
        counterfactual=report("results/tables/counterfactual.csv", caption="../report/counterfactual.rst", category="Tables"),
        markdown="results/tables/counterfactual.md",
    log:
        "results/logs/make_counterfactual_table.log",
    script:
        "../workflow_scripts/make_counterfactual_table.py"


def extra_targets():
    """The sweep (when Δ-Influence's scores exist), the counterfactual table (when configured) and the attacks'
    artifacts (e.g. the smooth trigger and a triggered example, RUN/artifacts/*.{npy,png})."""
    targets = [str(p).format(dataset=d, attack=a, seed=s) for d, a, s in runs() for p in artifact_outputs(a).values()]
    if "both" in needed_probes() and query_attacks():
        targets.append(rules.make_sweep_table.output.sweep)
        targets += [f"results/figures/{d}_{a}_threshold_sweep.png" for d in config["datasets"] for a in query_attacks()]
    if counterfactual_detectors():
        targets.append(rules.make_counterfactual_table.output.counterfactual)
    if gus_attacks():
        targets += [rules.make_gus_table.output.gus] + [f"results/figures/{d}_{a}_gus.png" for d in config["datasets"] for a in gus_attacks()]
    return targets


def figure_targets():
    """One influence-collapse and one PSR-vs-accuracy figure per (dataset, attack that affects test points)."""
    targets = []
    for d in config["datasets"]:
        for a in query_attacks():
            if "delta_influence" in config["detectors"]:
                targets.append(f"results/figures/{d}_{a}_influence_collapse.png")
            if "eu" in config["unlearners"]:
                targets.append(f"results/figures/{d}_{a}_psr_vs_accuracy_eu.png")
    return targets


rule plot_influence_collapse:
    input:
        # every seed: the figure draws the first seed whose attack took (a brew may fail on the first)
        scores=[f"results/{{dataset}}/{{attack}}/s{s}/scores/both.pt" for s in config["seeds"]],
        truth=[f"results/{{dataset}}/{{attack}}/s{s}/truth.json" for s in config["seeds"]],
    output:
        figure=report("results/figures/{dataset}_{attack}_influence_collapse.png", caption="../report/collapse.rst", category="Figures"),
    params:
        tau=detector_params("delta_influence")["tau"],
        k=detector_params("delta_influence")["k"],
        seeds=config["seeds"],
    log:
        "results/logs/figures/{dataset}_{attack}_influence_collapse.log",
    script:
        "../workflow_scripts/plot_influence_collapse.py"


rule plot_psr_vs_accuracy:
    input:
        unlearning=rules.make_tables.output.unlearning,
    output:
        figure=report("results/figures/{dataset}_{attack}_psr_vs_accuracy_{unlearner}.png", caption="../report/psr_vs_accuracy.rst", category="Figures"),
    log:
        "results/logs/figures/{dataset}_{attack}_psr_vs_accuracy_{unlearner}.log",
    script:
        "../workflow_scripts/plot_psr_vs_accuracy.py"


# The Gaussian Unlearning Score of the poisoned model and of every detector × unlearner, for the attacks measured
# by it (Gaussian poisoning: no test point is affected, so no PSR). Reads only metrics JSONs.
rule make_gus_table:
    input:
        poisoned=run_paths("metrics/poisoned.json", attacks=gus_attacks()),
        unlearned=unlearning_metrics(attacks=gus_attacks()),
    output:
        gus=report("results/tables/gus.csv", caption="../report/gus.rst", category="Tables"),
        markdown="results/tables/gus.md",
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
    log:
        "results/logs/figures/{dataset}_{attack}_gus.log",
    script:
        "../workflow_scripts/plot_gus.py"
