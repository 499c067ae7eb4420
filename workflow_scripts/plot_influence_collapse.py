from unpoison.runtime import run_step
from unpoison.stages.report import plot_influence_collapse

run_step(snakemake, plot_influence_collapse)  # noqa: F821 (the object Snakemake gives a rule's script)
