from unpoison.runtime import run_step
from unpoison.stages.evaluate import evaluate_models

run_step(snakemake, evaluate_models)  # noqa: F821 (the object Snakemake gives a rule's script)
