from unpoison.runtime import logged
from unpoison.stages.controls import controls

with logged(snakemake.log[0], snakemake.threads):
    i, p = snakemake.input, snakemake.params
    controls(
        i.clean, i.model, p.n_controls, p.seed, p.execution.device, snakemake.output.controls,
        batch_size=p.execution.settings["eval_batch_size"], queries=i.queries,
    )
