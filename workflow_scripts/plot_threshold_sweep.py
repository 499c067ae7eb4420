from unpoison.runtime import run_step
from unpoison.stages.report import plot_threshold_sweep

run_step(snakemake, plot_threshold_sweep)  # noqa: F821 (the object Snakemake gives a rule's script)
