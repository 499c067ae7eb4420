from unpoison.runtime import logged
from unpoison.stages.counterfactual import counterfactual

with logged(snakemake.log[0], snakemake.threads) as log:
    i, p, w = snakemake.input, snakemake.params, snakemake.wildcards
    ids = {"dataset": w.dataset, "attack": w.attack, "seed": int(w.seed), "detector": w.detector}
    counterfactual(
        i.model, i.clean, i.poisoned, i.flagged, i.truth, w.attack, p.attack, p.recipe, p.seed, p.execution.device,
        ids, snakemake.output.metrics, batch_size=p.execution.settings["eval_batch_size"], log=log, queries=i.queries,
    )
