from unpoison.runtime import logged
from unpoison.stages.model import queries

with logged(snakemake.log[0], snakemake.threads):
    i, p = snakemake.input, snakemake.params
    queries(
        i.clean, i.truth, i.model, snakemake.wildcards.attack, p.attack, p.n_queries, p.seed, p.execution.device,
        snakemake.output.queries, batch_size=p.execution.settings["eval_batch_size"],
    )
