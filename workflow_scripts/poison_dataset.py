from unpoison.runtime import logged
from unpoison.stages.data import poison_dataset

with logged(snakemake.log[0], snakemake.threads) as log:
    i, o, p = snakemake.input, snakemake.output, snakemake.params
    names = {key.rsplit("_", 1)[0] for key in o.keys() if key.endswith("_npy")}
    artifacts = {name: (o[f"{name}_npy"], o[f"{name}_png"]) for name in names}
    poison_dataset(
        i.clean, snakemake.wildcards.attack, p.attack, p.seed, o.poisoned, o.truth, clean_model=i.get("clean_model"),
        recipe=p.recipe, device=p.execution.device, artifacts=artifacts, log=log,
    )
