from unpoison.report.gus import gus_rows, plot_gus
from unpoison.runtime import logged

with logged(snakemake.log[0]):
    i, w = snakemake.input, snakemake.wildcards
    plot_gus(gus_rows(i.poisoned, i.unlearned), snakemake.output.figure, f"{w.dataset} × {w.attack}: Gaussian Unlearning Score")
