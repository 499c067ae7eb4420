def detect_inputs(wildcards):
    """What a detector reads, from its registry entry: a score file, the model, penultimate features, its
    own per-dataset model, the training set whenever it reads any of the last three, truth.json ONLY
    for a detector that declares `needs_truth` (the oracle); and the run's queries, which say whether the
    attack took (if not, no detector runs: unpoison.status). On an attack that affects no test point
    (Gaussian poisoning) a query-based detector reads no scores (none are computed) and is not applicable."""
    det = DETECTORS[detector_method(wildcards.detector)]
    run = RUN.format(**wildcards)
    inputs = {"queries": f"{run}/queries.pt"}
    if not ATTACKS[wildcards.attack].affects_test and (det.probe or det.control_probe):
        return inputs
    if det.probe:
        inputs[f"scores_{det.probe}"] = f"{run}/scores/{det.probe}.pt"
    if det.control_probe:
        inputs[f"scores_controls_{det.control_probe}"] = f"{run}/scores/controls_{det.control_probe}.pt"
    if det.needs_model:
        inputs["model"] = f"{run}/model.pt"
    if det.needs_features:
        inputs["features"] = f"{run}/features.pt"
    if det.needs_dataset_model:
        inputs["dataset_model"] = DATASET_MODEL.format(dataset=wildcards.dataset, name=det.needs_dataset_model)
    if det.reads_training_set():
        inputs["poisoned"] = f"{run}/poisoned.pt"
    if det.needs_truth:
        inputs["truth"] = f"{run}/truth.json"
    return inputs


# Reads truth.json only for the oracle (needs_truth); no other detector gets it.
rule detect:
    input:
        unpack(detect_inputs),
    output:
        flagged=RUN + "/flagged/{detector}.npy",
    params:
        method=lambda w: detector_method(w.detector),
        settings=lambda w: detector_params(w.detector),
    log:
        RUN + "/logs/detect/{detector}.log",
    script:
        "../workflow_scripts/detect.py"
