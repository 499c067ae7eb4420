from unpoison.runtime import logged
from unpoison.stages.data import poison_dataset

with logged(snakemake.log[0]):
    poison_dataset(
        snakemake.input.clean, snakemake.wildcards.attack, snakemake.params.attack, snakemake.params.seed,
        snakemake.output.poisoned, snakemake.output.truth,
    )
