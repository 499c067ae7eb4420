from unpoison.runtime import run_step
from unpoison.stages.report import make_counterfactual_table

run_step(snakemake, make_counterfactual_table)  # noqa: F821 (the object Snakemake gives a rule's script)
