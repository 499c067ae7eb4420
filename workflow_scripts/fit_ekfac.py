from unpoison.runtime import run_step
from unpoison.stages.influence import fit_ekfac

run_step(snakemake, fit_ekfac)  # noqa: F821 (the object Snakemake gives a rule's script)
