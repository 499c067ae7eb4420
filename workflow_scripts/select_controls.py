from unpoison.runtime import run_step
from unpoison.stages.influence import select_controls

run_step(snakemake, select_controls)  # noqa: F821 (the object Snakemake gives a rule's script)
