"""Result tables: cost relative to EU and the ground-truth mark of the oracle's rows."""

import json

import numpy as np
import pytest

from unpoison.report.tables import detection_table, summary_markdown, summary_table, unlearning_table


def _write(path, obj):
    path.write_text(json.dumps(obj))
    return str(path)


def test_cost_vs_eu_divides_by_eu_on_the_same_run_and_detector_and_oracle_rows_are_marked(tmp_path):
    ids = {"dataset": "digits", "attack": "badnet"}
    det, unl, poisoned = [], [], []
    for seed in (0, 1):
        for d in ("delta_influence", "oracle_50"):
            det.append(
                _write(
                    tmp_path / f"d{seed}{d}.json",
                    {
                        **ids,
                        "seed": seed,
                        "detector": d,
                        "n_flagged": 20,
                        "true_positives": 20,
                        "n_poisons": 40,
                        "tpr": 0.5,
                        "precision": 1.0,
                    },
                )
            )
            for u, sec in (("eu", 10.0 * (seed + 1)), ("ssd", 1.0 * (seed + 1)), ("scrub", 5.0)):
                unl.append(
                    _write(
                        tmp_path / f"u{seed}{d}{u}.json",
                        {
                            **ids,
                            "seed": seed,
                            "detector": d,
                            "unlearner": u,
                            "clean_acc": 0.9,
                            "psr": 0.1,
                            "seconds": sec,
                            "cpu_seconds": sec / 2,
                            "budget_epochs": 1.0,
                        },
                    )
                )
        poisoned.append(_write(tmp_path / f"p{seed}.json", {**ids, "seed": seed, "clean_acc": 0.99, "psr": 1.0}))
    d = detection_table(det, ["oracle_50"])
    assert d.set_index("detector").uses_truth.to_dict() == {"delta_influence": False, "oracle_50": True}
    u = unlearning_table(unl, poisoned, ["delta_influence", "oracle_50"])
    ssd = u[u.unlearner == "ssd"].set_index(["seed", "detector"])
    assert ssd.cost_vs_eu.tolist() == pytest.approx([0.1] * 4) and ssd.cpu_cost_vs_eu.tolist() == pytest.approx(
        [0.1] * 4
    )
    scrub = u[(u.unlearner == "scrub") & (u.detector == "oracle_50")]
    assert scrub.cost_vs_eu.tolist() == pytest.approx([0.5, 0.25])  # each seed against its own EU
    assert (u[u.unlearner == "none"].cost_vs_eu == 0).all()
    s = summary_table(d, u)
    row = s[(s.detector == "oracle_50") & (s.unlearner == "scrub")].iloc[0]
    assert row.uses_truth and row.cost_vs_eu_mean == pytest.approx(0.375) and row.n_seeds == 2
    md = summary_markdown(s)
    assert "| oracle_50 † | scrub |" in md and "| delta_influence | scrub |" in md
    assert "0.38 ± 0.12 |" in md and "† reads the ground truth" in md


def test_cost_vs_eu_is_missing_without_eu(tmp_path):
    row = {
        "dataset": "x",
        "attack": "a",
        "seed": 0,
        "detector": "d",
        "unlearner": "ssd",
        "clean_acc": 1.0,
        "psr": 0.0,
        "seconds": 1.0,
        "cpu_seconds": 1.0,
        "budget_epochs": 1.0,
    }
    u = unlearning_table([_write(tmp_path / "u.json", row)], [], ["d"])
    assert np.isnan(u.cost_vs_eu.iloc[0])
