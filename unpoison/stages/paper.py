"""Step of rules/paper.smk: the paper's Tables 1-5 and Figures 2-5 from the tidy tables of the grid that ran."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from unpoison.report.paper import PaperGrid
from unpoison.report.paper_figures import write_paper


def make_paper(
    *,
    detection_csv: str,
    unlearning_csv: str,
    counterfactual_csv: str | Sequence[str],
    collapse: Sequence[str],
    grid: dict[str, Any],
    collapse_keys: list[list[str]],
    **outputs: str,
) -> None:
    """Write every file of ``results/paper/`` (``outputs``: tableN, tableN_md, figureN → path).

    Args:
        counterfactual_csv: the counterfactual table, or an empty list when the grid has none.
        collapse: influence-collapse figures, keyed in the same order by ``collapse_keys`` = [detector, "dataset /
            attack"].
    """
    cf = counterfactual_csv if isinstance(counterfactual_csv, str) else None
    panels: dict[str, dict[str, str]] = {}
    for (detector, column), path in zip(collapse_keys, collapse, strict=True):
        panels.setdefault(detector, {})[column] = path
    write_paper(
        pd.read_csv(detection_csv),
        pd.read_csv(unlearning_csv),
        pd.read_csv(cf) if cf else None,
        PaperGrid.from_dict(grid),
        panels,
        outputs,
    )
