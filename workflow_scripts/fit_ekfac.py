from unpoison.runtime import logged
from unpoison.stages.influence import fit

with logged(snakemake.log[0], snakemake.threads):
    p = snakemake.params
    fit(snakemake.input.model, snakemake.input.poisoned, p.settings, p.seed, p.device, snakemake.output.factors)
