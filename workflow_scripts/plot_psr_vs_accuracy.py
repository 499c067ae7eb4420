from unpoison.runtime import run_step
from unpoison.stages.report import plot_psr_vs_accuracy

run_step(snakemake, plot_psr_vs_accuracy)  # noqa: F821 (the object Snakemake gives a rule's script)
