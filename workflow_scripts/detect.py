from unpoison.runtime import logged
from unpoison.stages.defend import detect

with logged(snakemake.log[0], snakemake.threads):
    i = dict(snakemake.input.items())
    scores = {name.removeprefix("scores_"): path for name, path in i.items() if name.startswith("scores_")}
    detect(
        snakemake.params.method, snakemake.params.settings, snakemake.output.flagged, scores=scores,
        model=i.get("model"), poisoned=i.get("poisoned"), features=i.get("features"), dataset_model=i.get("dataset_model"),
        queries=i.get("queries"),
        truth=i.get("truth"), seed=int(snakemake.wildcards.seed),
    )
