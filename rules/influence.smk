# EK-FAC factors: fitted ONCE per trained model and reused by every probe and detector. Skipped (a directory
# holding only SKIPPED.json) when the queries' status says there is nothing to score: a failed attack, or an
# attack with no affected test point. ancient(): re-selecting the queries (e.g. another queries.count) never refits.
def fit_inputs(wildcards):
    """The model and data; with influence.shards K > 1, the eigenbasis and the K lambda shards to sum."""
    run = RUN.format(**wildcards)
    inputs = {"model": f"{run}/model.pt", "poisoned": f"{run}/poisoned.pt", "queries": ancient(f"{run}/queries.pt")}
    if SHARDS > 1:
        inputs["eigen"] = f"{run}/ekfac_shards/eigen"
        inputs["lambda_shards"] = [f"{run}/ekfac_shards/lambda/{i}" for i in range(SHARDS)]
    return inputs


rule fit_ekfac:
    input:
        unpack(fit_inputs),
    output:
        factors=directory(RUN + "/ekfac"),
    params:
        settings=factor_settings().science(),
        seed=wildcard("seed", int),
        execution=execution(factor_settings()),
    threads: res("fit_ekfac", "threads")
    resources:
        gpu=res("fit_ekfac", "gpu"),
        mem_mb=res("fit_ekfac", "mem_mb"),
        runtime=res("fit_ekfac", "runtime"),
    priority: STAGE_PRIORITY["fit_ekfac"]
    log:
        RUN + "/logs/fit_ekfac.log",
    script:
        "../workflow_scripts/fit_ekfac.py"


# Control queries: clean test images the model gets right (never reads truth), for detectors that set their
# threshold from them. Only in the DAG when a configured detector declares a control_probe.
rule select_controls:
    input:
        clean=rules.prepare_dataset.output.clean,
        model=rules.train_model.output.model,
        queries=rules.select_queries.output.queries,  # controls of the query's predicted class (never truth)
    output:
        controls=RUN + "/controls.pt",
    params:
        n_controls=config["queries"].get("controls", 10),
        seed=wildcard("seed", int),
        execution=eval_execution,
    priority: STAGE_PRIORITY["select_controls"]
    log:
        RUN + "/logs/select_controls.log",
    script:
        "../workflow_scripts/select_controls.py"


def score_inputs(wildcards):
    run = RUN.format(**wildcards)
    inputs = {"model": f"{run}/model.pt", "poisoned": f"{run}/poisoned.pt", "queries": f"{run}/queries.pt",
              "factors": f"{run}/ekfac"}
    if needed_control_probes():
        inputs["controls"] = f"{run}/controls.pt"
    return inputs


def gather_inputs(wildcards):
    """score_probes' inputs: with influence.shards K > 1, the K score parts instead of the factors."""
    inputs = score_inputs(wildcards)
    if SHARDS > 1 and "shard" not in wildcards.keys():
        inputs.pop("factors")
        inputs["parts"] = [RUN.format(**wildcards) + f"/scores/parts/{i}.pt" for i in range(SHARDS)]
    return inputs


def score_outputs_names():
    """The score files of a run: each needed probe, and controls_<probe> for the control queries."""
    return needed_probes() + [f"controls_{p}" for p in needed_control_probes()]


# Base queries + n_b transformed copies for every needed probe (and the control queries through the probes
# that detectors read for them), scored in ONE pass over the training set (or gathered from K score shards).
rule score_probes:
    input:
        unpack(gather_inputs),
    output:
        **{probe: RUN + f"/scores/{probe}.pt" for probe in needed_probes()},
        **{f"controls_{probe}": RUN + f"/scores/controls_{probe}.pt" for probe in needed_control_probes()},
    params:
        n_b=config["influence"]["n_b"],
        settings=score_settings().science(),
        seed=wildcard("seed", int),
        execution=execution(score_settings()),
    threads: res("score_probes", "threads")
    resources:
        gpu=res("score_probes", "gpu"),
        mem_mb=res("score_probes", "mem_mb"),
        runtime=res("score_probes", "runtime"),
    priority: STAGE_PRIORITY["score_probes"]
    log:
        RUN + "/logs/score_probes.log",
    script:
        "../workflow_scripts/score_probes.py"
