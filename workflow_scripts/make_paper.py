from unpoison.runtime import run_step
from unpoison.stages.paper import make_paper

run_step(snakemake, make_paper)  # noqa: F821 (the object Snakemake gives a rule's script)
