from unpoison.runtime import logged
from unpoison.stages.model import train_clean

with logged(snakemake.log[0], snakemake.threads) as log:
    p = snakemake.params
    train_clean(snakemake.input.clean, p.model, p.recipe, p.seed, p.execution.device, snakemake.output.model, log)
