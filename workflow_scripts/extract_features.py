from unpoison.runtime import run_step
from unpoison.stages.detector_inputs import extract_features

run_step(snakemake, extract_features)  # noqa: F821 (the object Snakemake gives a rule's script)
