"""The paper's tables and figures (results/paper/) from the tidy tables of the grid that ran."""
import pandas as pd

from unpoison.report.paper import PaperGrid
from unpoison.report.paper_figures import write_paper
from unpoison.runtime import logged

with logged(snakemake.log[0]):
    i, p = snakemake.input, snakemake.params
    cf = i.counterfactual if isinstance(i.counterfactual, str) else None  # an empty input list: not configured
    write_paper(
        pd.read_csv(i.detection), pd.read_csv(i.unlearning), pd.read_csv(cf) if cf else None,
        PaperGrid.from_dict(p.grid), dict(zip(p.collapse, i.collapse)), dict(snakemake.output.items()),
    )
