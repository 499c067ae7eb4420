from unpoison.runtime import logged
from unpoison.stages.detector_inputs import train_frequency

with logged(snakemake.log[0], snakemake.threads) as log:
    p = snakemake.params
    train_frequency(snakemake.input.clean, p.settings, p.execution.device, snakemake.output.model, log)
