from unpoison.runtime import run_step
from unpoison.stages.influence_shards import fit_covariance_shard

run_step(snakemake, fit_covariance_shard)  # noqa: F821 (the object Snakemake gives a rule's script)
