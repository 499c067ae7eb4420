from unpoison.runtime import logged
from unpoison.stages.influence import fit

with logged(snakemake.log[0], snakemake.threads):
    p = snakemake.params
    fit(snakemake.input.model, snakemake.input.poisoned, p.execution.merged(p.settings), p.seed, p.execution.device, snakemake.output.factors,
        queries=snakemake.input.queries)
