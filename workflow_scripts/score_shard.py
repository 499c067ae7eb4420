from unpoison.runtime import run_step
from unpoison.stages.influence_shards import score_shard

run_step(snakemake, score_shard)  # noqa: F821 (the object Snakemake gives a rule's script)
