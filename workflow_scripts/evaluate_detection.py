from unpoison.runtime import logged
from unpoison.stages.evaluate import evaluate_detection

with logged(snakemake.log[0]):
    w = snakemake.wildcards
    ids = {"dataset": w.dataset, "attack": w.attack, "seed": int(w.seed), "detector": w.detector}
    evaluate_detection(snakemake.input.flagged, snakemake.input.truth, ids, snakemake.output.metrics)
