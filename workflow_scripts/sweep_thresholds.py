from unpoison.runtime import run_step
from unpoison.stages.evaluate import sweep_thresholds

run_step(snakemake, sweep_thresholds)  # noqa: F821 (the object Snakemake gives a rule's script)
