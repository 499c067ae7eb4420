def detect_inputs(wildcards):
    """What a detector reads, from its registry entry (unpoison.detectors.inputs.INPUT_KINDS): the score files of
    its probes and every input kind it lists in `reads` (truth.json only for a detector that lists `truth`: the
    oracle); and the run's queries, whose status says whether the detector applies. On an attack that affects no
    test point, a query-based detector reads no scores (none are computed) and is not applicable."""
    det = detector_class(wildcards.detector)
    run = RUN.format(**wildcards)
    inputs = {"queries": f"{run}/queries.pt"}
    if not ATTACKS[wildcards.attack].affects_test and det.reads_query():
        return inputs
    for prefix, probe in (("", det.probe), ("controls_", det.control_probe)):
        if probe:
            inputs[f"scores_{prefix}{probe}"] = SCORES_PATH.format(run=run, probe=prefix + probe)
    for kind in det.reads:
        inputs[kind] = input_path(kind, run, DATASET_DIR.format(dataset=wildcards.dataset), wildcards.detector)
    return inputs


rule detect:
    input:
        unpack(detect_inputs),
    output:
        flagged=RUN + "/flagged/{detector}.npy",
    params:
        method=lambda w: detector_method(w.detector),
        settings=lambda w: detector_params(w.detector),
        seed=wildcard("seed", int),
    priority: STAGE_PRIORITY["detect"]
    log:
        RUN + "/logs/detect/{detector}.log",
    script:
        "../workflow_scripts/detect.py"
