from unpoison.runtime import run_step
from unpoison.stages.data import poison_dataset

run_step(snakemake, poison_dataset)  # noqa: F821 (the object Snakemake gives a rule's script)
