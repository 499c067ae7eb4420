from unpoison.runtime import run_step
from unpoison.stages.report import make_gus_table

run_step(snakemake, make_gus_table)  # noqa: F821 (the object Snakemake gives a rule's script)
