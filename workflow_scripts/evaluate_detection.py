from unpoison.runtime import run_step
from unpoison.stages.evaluate import evaluate_detection

run_step(snakemake, evaluate_detection)  # noqa: F821 (the object Snakemake gives a rule's script)
