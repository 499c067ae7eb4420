from unpoison.runtime import run_step
from unpoison.stages.train import train_clean

run_step(snakemake, train_clean)  # noqa: F821 (the object Snakemake gives a rule's script)
