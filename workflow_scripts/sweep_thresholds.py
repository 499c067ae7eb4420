from unpoison.runtime import logged
from unpoison.stages.evaluate import sweep_thresholds

with logged(snakemake.log[0]):
    i, w = snakemake.input, snakemake.wildcards
    ids = {"dataset": w.dataset, "attack": w.attack, "seed": int(w.seed)}
    sweep_thresholds(i.both, i.base, i.truth, snakemake.params.grid, ids, snakemake.output.sweep)
