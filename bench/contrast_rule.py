"""The ground-truth-free contrast rule (delta_influence_contrast) against τ = 0, k = 1, from saved scores.

For every run directory given (each with scores/both.pt, scores/controls_both.pt and truth.json, written by a
grid that ran delta_influence_contrast), prints TPR / precision / flagged count of the paper's fixed rule and of
the contrast rule at each max_control_fraction, per seed and as mean ± std. Reads ground truth: this is evaluation, used
to CHOOSE max_control_fraction on selection seeds (100+) and to report it on others, never inside the detector.

    python bench/contrast_rule.py results/digits/badnet/s100 results/digits/badnet/s101 ...
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

from unpoison.detectors import DetectorInputs, get_detector
from unpoison.metrics import detection_metrics

FRACTIONS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def rows(run: Path) -> list[dict]:
    both = torch.load(run / "scores/both.pt", weights_only=True)
    controls = torch.load(run / "scores/controls_both.pt", weights_only=True)
    poisons = json.loads((run / "truth.json").read_text())["poison_indices"]
    inputs = DetectorInputs(scores={"both": both, "controls_both": controls})
    out = [{"rule": "tau=0,k=1", **detection_metrics(get_detector("delta_influence", {}).detect(inputs), poisons)}]
    for f in FRACTIONS:
        flags = get_detector("delta_influence_contrast", {"max_control_fraction": f}).detect(inputs)
        out.append({"rule": f"contrast max_control_fraction={f}", **detection_metrics(flags, poisons)})
    return out


def main(runs: list[str]) -> None:
    table: dict[str, list[dict]] = {}
    for run in map(Path, runs):
        for r in rows(run):
            table.setdefault(r["rule"], []).append(r)
            print(
                f"{run}  {r['rule']:28s} flagged {r['n_flagged']:5d}  TPR {100 * r['tpr']:5.1f}  precision {100 * r['precision']:5.1f}"
            )
    print("\n| rule | flagged | TPR % | precision % |\n|---|---:|---:|---:|")
    for rule, rs in table.items():
        f, t, p = (np.array([r[k] for r in rs], dtype=float) for k in ("n_flagged", "tpr", "precision"))
        print(
            f"| {rule} | {f.mean():.0f} | {100 * t.mean():.1f} ± {100 * t.std():.1f} | {100 * p.mean():.1f} ± {100 * p.std():.1f} |"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
