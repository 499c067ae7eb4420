from unpoison.runtime import logged
from unpoison.stages.detector_inputs import extract_features

with logged(snakemake.log[0], snakemake.threads):
    i, p = snakemake.input, snakemake.params
    extract_features(
        i.model, i.poisoned, p.execution.device, p.execution.settings["eval_batch_size"], snakemake.output.features,
    )
