from unpoison.runtime import logged
from unpoison.stages.data import prepare_dataset

with logged(snakemake.log[0]):
    prepare_dataset(snakemake.params.settings, snakemake.output.clean)
