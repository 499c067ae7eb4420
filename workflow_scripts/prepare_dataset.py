from unpoison.runtime import run_step
from unpoison.stages.data import prepare_dataset

run_step(snakemake, prepare_dataset)  # noqa: F821 (the object Snakemake gives a rule's script)
