from unpoison.report.figures import plot_influence_collapse
from unpoison.runtime import logged

with logged(snakemake.log[0]):
    w, p = snakemake.wildcards, snakemake.params
    title = f"{w.dataset} / {w.attack} / seed {{seed}}: Δ-Influence (τ={p.tau:g}, k={p.k})"
    runs = list(zip(p.seeds, snakemake.input.scores, snakemake.input.truth))
    seed = plot_influence_collapse(runs, snakemake.output.figure, p.tau, p.k, title)
    print(f"drew seed {seed}" if seed is not None else "no seed has an affected test point: placeholder")
