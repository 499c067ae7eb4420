from unpoison.runtime import run_step
from unpoison.stages.train import train_model

run_step(snakemake, train_model)  # noqa: F821 (the object Snakemake gives a rule's script)
