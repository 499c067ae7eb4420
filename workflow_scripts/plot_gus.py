from unpoison.runtime import run_step
from unpoison.stages.report import plot_gus

run_step(snakemake, plot_gus)  # noqa: F821 (the object Snakemake gives a rule's script)
