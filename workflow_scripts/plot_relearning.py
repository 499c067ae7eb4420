from unpoison.runtime import run_step
from unpoison.stages.report import plot_relearning

run_step(snakemake, plot_relearning)  # noqa: F821 (the object Snakemake gives a rule's script)
