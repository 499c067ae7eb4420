import pandas as pd

from unpoison.report.figures import plot_psr_vs_accuracy
from unpoison.runtime import logged

with logged(snakemake.log[0]):
    w = snakemake.wildcards
    df = pd.read_csv(snakemake.input.unlearning)
    df = df[(df.dataset == w.dataset) & (df.attack == w.attack)]
    plot_psr_vs_accuracy(df, snakemake.output.figure, w.unlearner, f"{w.dataset} / {w.attack}: after {w.unlearner}")
