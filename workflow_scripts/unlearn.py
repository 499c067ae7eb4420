from unpoison.runtime import logged
from unpoison.stages.defend import unlearn

with logged(snakemake.log[0], snakemake.threads) as log:
    i, p = snakemake.input, snakemake.params
    unlearn(
        p.method, p.settings, i.model, i.poisoned, i.flagged, p.recipe, p.seed, p.execution.device,
        snakemake.output.model, log, queries=i.queries,
    )
