from unpoison.runtime import run_step
from unpoison.stages.unlearn import unlearn

run_step(snakemake, unlearn)  # noqa: F821 (the object Snakemake gives a rule's script)
