from unpoison.runtime import run_step
from unpoison.stages.train import select_queries

run_step(snakemake, select_queries)  # noqa: F821 (the object Snakemake gives a rule's script)
