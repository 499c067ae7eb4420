from unpoison.runtime import run_step
from unpoison.stages.detect import detect

run_step(snakemake, detect)  # noqa: F821 (the object Snakemake gives a rule's script)
