from unpoison.runtime import run_step
from unpoison.stages.evaluate import counterfactual

run_step(snakemake, counterfactual)  # noqa: F821 (the object Snakemake gives a rule's script)
