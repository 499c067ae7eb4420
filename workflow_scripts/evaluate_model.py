from unpoison.runtime import logged
from unpoison.stages.evaluate import evaluate_model

with logged(snakemake.log[0], snakemake.threads):
    i, w = snakemake.input, snakemake.wildcards
    ids = {"dataset": w.dataset, "attack": w.attack, "seed": int(w.seed)}
    ids.update({k: w[k] for k in ("detector", "unlearner") if k in w.keys()})
    p = snakemake.params
    evaluate_model(
        i.model, i.clean, i.truth, w.attack, p.attack, p.execution.device, ids, snakemake.output.metrics,
        batch_size=p.execution.settings["eval_batch_size"], queries=i.get("queries"), skip_if_failed="unlearner" in w.keys(),
        poisoned=i.get("poisoned"),
    )
