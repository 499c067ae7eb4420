from unpoison.runtime import logged
from unpoison.stages.influence import score

with logged(snakemake.log[0], snakemake.threads):
    i, p = snakemake.input, snakemake.params
    outputs = {name: path for name, path in snakemake.output.items()}
    score(i.model, i.poisoned, i.queries, i.factors, p.n_b, p.execution.merged(p.settings), p.seed, p.execution.device, outputs,
          controls=i.get("controls"))
