"""Summary tables when some seeds' attack failed: means over the seeds that took, attack success, reference rows."""

import json

import pandas as pd
import pytest

from unpoison.report.tables import (
    counterfactual_table,
    detection_table,
    reference_table,
    summary_markdown,
    summary_table,
    unlearning_table,
)
from unpoison.status import OK, attack_failed

FAILED_STATUS = attack_failed("only 1 of 35 affected test points are classified as the target (queries.count = 3)")
FAILED = FAILED_STATUS.label
RUN = {"dataset": "digits", "attack": "smooth"}


def fields(status):
    """A metrics row's status columns, as the evaluate steps write them."""
    return {"state": status.state.value, "status": status.label}


@pytest.fixture()
def files(tmp_path):
    def write(name, **row):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({**RUN, **row}))
        return str(path)

    status = {0: OK, 1: FAILED_STATUS, 2: OK}
    nan = float("nan")
    return {
        "detection": [
            write(
                f"d{s}",
                seed=s,
                detector="delta_influence",
                n_flagged=nan if s == 1 else 50 + s,
                true_positives=nan if s == 1 else 40,
                n_poisons=40,
                tpr=nan if s == 1 else 1.0,
                precision=nan if s == 1 else 0.8,
                **fields(status[s]),
            )
            for s in range(3)
        ],
        "unlearned": [
            write(
                f"u{s}",
                seed=s,
                detector="delta_influence",
                unlearner="eu",
                clean_acc=nan if s == 1 else 0.99,
                psr=nan if s == 1 else 0.0,
                seconds=0.0 if s == 1 else 5.0,
                **fields(status[s]),
            )
            for s in range(3)
        ],
        "poisoned": [
            write(f"p{s}", seed=s, clean_acc=0.99, psr=0.03 if s == 1 else 1.0, seconds=0.0, **fields(status[s]))
            for s in range(3)
        ],
        "clean": [write(f"c{s}", seed=s, clean_acc=0.995, psr=0.0, seconds=0.0) for s in range(3)],
    }


def test_rows_average_the_seeds_whose_attack_took(files):
    det = detection_table(files["detection"])
    unl = unlearning_table(files["unlearned"], files["poisoned"], ["delta_influence"])
    summary = summary_table(det, unl, reference_table(files["poisoned"], files["clean"])).set_index(
        ["detector", "unlearner"]
    )
    eu = summary.loc[("delta_influence", "eu")]
    assert eu.n_seeds == 3 and eu.n_ok == 2 and eu.attack_success == pytest.approx(2 / 3)
    assert eu.n_flagged_mean == pytest.approx(51) and eu.psr_mean == 0.0 and eu.seconds_mean == 5.0
    assert eu.status.startswith("attack failed on 1 of 3 seeds")
    assert summary.loc[("delta_influence", "none")].psr_mean == 1.0  # the failed seed's PSR is not in the defence rows
    poisoned = summary.loc[("—", "poisoned model")]  # ... but in the poisoned model's reference row
    assert poisoned.psr_mean == pytest.approx((1.0 + 0.03 + 1.0) / 3) and poisoned.attack_success == pytest.approx(
        2 / 3
    )
    clean = summary.loc[("—", "clean model")]
    assert clean.clean_acc_mean == pytest.approx(0.995) and clean.status == OK.label and pd.isna(clean.attack_success)
    assert list(summary.index[:2]) == [("—", "clean model"), ("—", "poisoned model")]  # reference rows first
    md = summary_markdown(summary.reset_index())
    assert "| digits | smooth | delta_influence | eu | 2/3 | 51 | 100.0 ± 0.0 |" in md
    assert "| digits | smooth | — | poisoned model | 2/3 | — | — | — | 99.0 ± 0.0 | 67.7 ± 45.7 |" in md


def test_a_row_whose_every_seed_failed_reads_not_applicable(files):
    det = detection_table(files["detection"][1:2])
    unl = unlearning_table(files["unlearned"][1:2], [], ["delta_influence"])
    summary = summary_table(det, unl)
    row = summary.iloc[0]
    assert row.n_ok == 0 and row.attack_success == 0 and row.status == FAILED and pd.isna(row.tpr_mean)
    assert f"| 0/1 | {FAILED} | — |" in summary_markdown(summary)


def test_der_and_robust_accuracy_columns_compare_each_model_with_the_poisoned_model_of_its_run(files):
    """DER = [max(0, ΔPSR) − max(0, ΔC-Acc) + 1] / 2 against the run's poisoned model: seed 0's EU drops PSR 1.0 → 0.0
    at no accuracy cost (0.99 → 0.99): DER 1; the poisoned model itself (``none``) has DER 0.5."""
    unl = unlearning_table(files["unlearned"], files["poisoned"], ["delta_influence"]).set_index(["unlearner", "seed"])
    assert unl.loc[("eu", 0), "der"] == pytest.approx(1.0) and unl.loc[("none", 0), "der"] == pytest.approx(0.5)
    assert pd.isna(unl.loc[("eu", 1), "der"])  # the failed seed's EU was not evaluated
    assert {"r_acc", "psr_relearned", "acc_relearned", "state"} <= set(unl.columns)


def test_counterfactual_rows_of_a_failed_run(tmp_path):
    rows = [
        {
            **RUN,
            "seed": 0,
            "detector": "delta_influence",
            "removed": r,
            "n_removed": float("nan"),
            "tpr": float("nan"),
            "clean_acc": float("nan"),
            "psr": float("nan"),
            **fields(FAILED_STATUS),
        }
        for r in ("detected", "missed")
    ]
    path = tmp_path / "cf.json"
    path.write_text(json.dumps({"rows": rows}))
    table = counterfactual_table([str(path)])
    assert (table.n_ok == 0).all() and (table.status == FAILED).all()
