from unpoison.runtime import run_step
from unpoison.stages.influence_shards import aggregate_covariance

run_step(snakemake, aggregate_covariance)  # noqa: F821 (the object Snakemake gives a rule's script)
