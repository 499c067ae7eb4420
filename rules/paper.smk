# The paper's Tables 1–5 and Figures 2–5 (results/paper/) from the tidy tables of whatever grid ran: one job.
# A cell or figure the grid cannot fill says why (e.g. "not run (add `frequency` to detectors)").


def paper_grid():
    """What the config ran, for unpoison.report.paper.PaperGrid: detector name → {method, test points}. A detector
    that reads test points but sets no n_points intersects all queries.count of them."""
    detectors = {}
    for name in config["detectors"]:
        params = detector_params(name)
        points = (params.get("n_points") or config["queries"]["count"]) if "n_points" in params else None
        detectors[name] = {"method": detector_method(name), "points": points}
    return {
        "datasets": list(config["datasets"]),
        "attacks": list(config["attacks"]),
        "seeds": list(config["seeds"]),
        "detectors": detectors,
        "unlearners": {u: unlearner_method(u) for u in config["unlearners"]},
        "counterfactual": list(config.get("counterfactual", [])),
        "display": {m: cls.display_name for m, cls in DETECTORS.items()},
        "no_query_attacks": [a for a in config["attacks"] if not ATTACKS[a].affects_test],
    }


def _paper(name, ext="csv"):
    path = f"results/paper/{name}.{ext}"
    return path if ext == "md" else report(path, caption=f"../report/paper_{name}.rst", category="Paper")


rule make_paper:
    input:
        detection_csv=rules.make_tables.output.detection_csv,
        unlearning_csv=rules.make_tables.output.unlearning_csv,
        counterfactual_csv=rules.make_counterfactual_table.output.counterfactual_csv if counterfactual_detectors() else [],
        collapse=[p for *_, p in collapse_figures()],
    output:
        **{f"table{i}": _paper(f"table{i}") for i in range(1, 6)},
        **{f"table{i}_md": _paper(f"table{i}", "md") for i in range(1, 6)},
        **{f"figure{i}": _paper(f"figure{i}", "png") for i in range(2, 6)},
    params:
        grid=paper_grid(),
        collapse_keys=[[det, f"{d} / {a}"] for det, d, a, _ in collapse_figures()],
    log:
        "results/logs/make_paper.log",
    script:
        "../workflow_scripts/make_paper.py"
