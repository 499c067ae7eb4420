import pandas as pd

from unpoison.report.figures import plot_threshold_sweep
from unpoison.runtime import logged

with logged(snakemake.log[0]):
    w = snakemake.wildcards
    df = pd.read_csv(snakemake.input.sweep)
    df = df[(df.dataset == w.dataset) & (df.attack == w.attack)]
    plot_threshold_sweep(df, snakemake.output.figure, f"{w.dataset} / {w.attack}: threshold sweep ({df.n_seeds.max() if len(df) else 0} seeds)")
