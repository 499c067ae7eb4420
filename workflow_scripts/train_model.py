from unpoison.runtime import logged
from unpoison.stages.model import train

with logged(snakemake.log[0], snakemake.threads) as log:
    p = snakemake.params
    train(snakemake.input.clean, snakemake.input.poisoned, p.model, p.recipe, p.seed, p.execution.device, snakemake.output.model, log)
