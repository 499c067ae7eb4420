from unpoison.runtime import run_step
from unpoison.stages.influence import score_probes

run_step(snakemake, score_probes)  # noqa: F821 (the object Snakemake gives a rule's script)
