from unpoison.runtime import run_step
from unpoison.stages.influence_shards import fit_lambda_shard

run_step(snakemake, fit_lambda_shard)  # noqa: F821 (the object Snakemake gives a rule's script)
