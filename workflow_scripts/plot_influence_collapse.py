from unpoison.report.figures import plot_influence_collapse
from unpoison.runtime import logged

with logged(snakemake.log[0]):
    w, p = snakemake.wildcards, snakemake.params
    title = f"{w.dataset} / {w.attack} / seed {p.seed}: Δ-Influence (τ={p.tau:g}, k={p.k})"
    plot_influence_collapse(snakemake.input.scores, snakemake.input.truth, snakemake.output.figure, p.tau, p.k, title)
