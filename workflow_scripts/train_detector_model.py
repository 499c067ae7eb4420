from unpoison.runtime import run_step
from unpoison.stages.detector_inputs import train_detector_model

run_step(snakemake, train_detector_model)  # noqa: F821 (the object Snakemake gives a rule's script)
