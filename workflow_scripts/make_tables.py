from unpoison.runtime import run_step
from unpoison.stages.report import make_tables

run_step(snakemake, make_tables)  # noqa: F821 (the object Snakemake gives a rule's script)
