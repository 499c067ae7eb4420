"""The paper's tables and figures (unpoison.report.paper, paper_figures) on small hand-made tidy tables."""

import json

import pandas as pd
import pytest

from unpoison.report import paper_figures
from unpoison.report.paper import PAPER_ORDER, PaperGrid, markdown, paper_tables, points_table, table1, table2, table3


def grid(detectors, unlearners=("none", "eu"), counterfactual=(), datasets=("digits",), attacks=("badnet",)):
    """A PaperGrid from {name: (method, points)}."""
    from unpoison.attacks import ATTACKS
    from unpoison.detectors import DETECTORS

    return PaperGrid.from_dict(
        {
            "datasets": list(datasets),
            "attacks": list(attacks),
            "seeds": [0, 1],
            "detectors": {n: {"method": m, "points": p} for n, (m, p) in detectors.items()},
            "unlearners": {u: u for u in unlearners},
            "counterfactual": list(counterfactual),
            "display": {m: cls.display_name for m, cls in DETECTORS.items()},
            "no_query_attacks": [a for a in attacks if a in ATTACKS and not ATTACKS[a].affects_test],
        }
    )


def det_rows(detector, precisions, tprs, dataset="digits", attack="badnet", **extra):
    return [
        {
            "dataset": dataset,
            "attack": attack,
            "seed": s,
            "detector": detector,
            "n_flagged": 10,
            "true_positives": 5,
            "n_poisons": 40,
            "tpr": t,
            "precision": p,
            **extra,
        }
        for s, (p, t) in enumerate(zip(precisions, tprs))
    ]


def cell(df, detector, column=("digits", "badnet"), **where):
    sel = df[(df.detector == detector) & (df.dataset == column[0]) & (df.attack == column[1])]
    for k, v in where.items():
        sel = sel[sel[k] == v]
    assert len(sel) == 1, sel
    return sel.iloc[0]


GRID = grid(
    {
        "ekfac": ("ekfac", 1),
        "delta_influence": ("delta_influence", 1),
        "oracle": ("oracle", None),
        "activation_clustering": ("activation_clustering", None),
    }
)
DETECTION = pd.DataFrame(
    det_rows("delta_influence", [0.2, 0.4], [1.0, 1.0])
    + det_rows("ekfac", [0.05, 0.05], [1.0, 0.5])
    + det_rows("oracle", [1.0, 1.0], [1.0, 1.0])
    + det_rows("activation_clustering", [0.1], [0.9])
)


def test_table1_rows_follow_the_paper_then_the_others_and_cells_are_mean_std_over_seeds():
    t = table1(DETECTION, GRID)
    assert list(dict.fromkeys(t.detector)) == PAPER_ORDER + ["oracle"]
    di = cell(t, "delta_influence")
    assert di.cell == "30.0 ± 10.0 / 100.0 ± 0.0 (2 seeds)"  # std over seeds with ddof=0, as the tidy summaries
    assert di.precision_mean == pytest.approx(0.3) and di.precision_std == pytest.approx(0.1) and di.n_seeds == 2
    assert cell(t, "ekfac").cell == "5.0 ± 0.0 / 75.0 ± 25.0 (2 seeds)"
    assert cell(t, "activation_clustering").cell == "10.0 ± 0.0 / 90.0 ± 0.0 (1 seed)"
    assert cell(t, "frequency").cell == "not run (add `frequency` to detectors)"
    assert cell(t, "spectral_signatures").n_seeds == 0


def test_a_configured_detector_without_rows_and_a_missing_column_say_so():
    g = grid({"delta_influence": ("delta_influence", 1)}, attacks=("badnet", "brew"))
    t = table1(DETECTION, g)
    assert cell(t, "delta_influence", ("digits", "brew")).cell.startswith("missing: no rows in detection.csv")
    assert cell(t, "delta_influence").cell.startswith("30.0 ± 10.0")


def test_extra_columns_are_ignored_and_failed_attacks_are_left_out_with_their_reason():
    failed = "n/a (attack failed: 0 of 1 affected test points)"
    rows = det_rows(
        "delta_influence", [0.2, float("nan")], [1.0, float("nan")], uses_truth=False, cpu_seconds=3.0
    ) + det_rows("ekfac", [float("nan")] * 2, [float("nan")] * 2, uses_truth=False)
    df = pd.DataFrame(rows)
    df["status"] = ["ok", failed, failed, failed]
    df["state"] = ["ok", "attack_failed", "attack_failed", "attack_failed"]
    t = table1(df, GRID)
    di = cell(t, "delta_influence")
    assert di.n_seeds == 1
    assert (
        di.cell
        == f"20.0 ± 0.0 / 100.0 ± 0.0 (1 seed); attack failed on 1 of 2 seeds ({failed}): metrics over the others"
    )
    assert cell(t, "ekfac").cell == failed


def test_a_cell_whose_seeds_are_all_na_for_different_reasons_names_each_with_its_seed_count():
    """A 5-point detector on a brew that failed on seed 0: the other seeds are n/a for another reason (the brew
    has one target), and the cell must not report only the first seed's."""
    failed, one_point = "n/a (attack failed: target not flipped)", "n/a (n_points = 5, but the attack gives 1)"
    df = pd.DataFrame(det_rows("delta_influence", [float("nan")] * 3, [float("nan")] * 3))
    df["status"] = [failed, one_point, one_point]
    df["state"] = ["attack_failed", "too_few_points", "too_few_points"]
    assert cell(table1(df, GRID), "delta_influence").cell == f"{one_point} (2 seeds); {failed} (1 seed)"


def test_named_variants_land_in_the_points_tables_by_their_n_points_not_their_names():
    g = grid(
        {
            "delta_influence": ("delta_influence", 1),
            "many": ("delta_influence", 5),
            "ek_ten": ("ekfac", 10),
            "ekfac": ("ekfac", 1),
            "di_20": ("delta_influence", 20),
        }
    )
    df = pd.DataFrame(
        det_rows("delta_influence", [0.5], [1.0])
        + det_rows("many", [0.8], [1.0])
        + det_rows("ek_ten", [0.6], [0.9])
        + det_rows("ekfac", [0.1], [1.0])
        + det_rows("di_20", [0.9], [1.0])
    )
    t4 = points_table(df, g, "delta_influence")
    assert list(t4.points) == [1, 5, 10, 20] and list(t4.detector) == [
        "delta_influence",
        "many",
        "delta_influence",
        "di_20",
    ]
    assert t4.cell.iloc[1] == "80.0 ± 0.0 / 100.0 ± 0.0 (1 seed)"
    assert t4.cell.iloc[2].startswith("not run (add a `delta_influence` detector with n_points: 10")
    t5 = points_table(df, g, "ekfac")
    assert list(t5.points) == [1, 5, 10] and t5.cell.iloc[2] == "60.0 ± 0.0 / 90.0 ± 0.0 (1 seed)"
    assert "n_points: 5" in t5.cell.iloc[1]
    md = markdown(t4, ["points", "detector"], "T4")
    assert "| 5 | Δ-Influence: many | 80.0 ± 0.0 / 100.0 ± 0.0 (1 seed) |" in md


def test_ablation_table_lists_each_method_and_says_which_did_not_run():
    t = table2(DETECTION, GRID)
    assert list(t.detector) == ["delta_influence", "label_only", "image_only"]
    assert t.cell.iloc[1] == "not run (add `label_only` to detectors)"


CF = pd.DataFrame(
    [
        {
            "dataset": "digits",
            "attack": "badnet",
            "detector": "delta_influence",
            "removed": r,
            "n_seeds": 2,
            "n_removed_mean": n,
            "tpr_mean": 1.0,
            "clean_acc_mean": 0.99,
            "psr_mean": psr,
            "n_removed_std": 0.0,
            "tpr_std": 0.0,
            "clean_acc_std": 0.01,
            "psr_std": 0.0,
            "extra": 1,
        }
        for r, n, psr in (("detected", 40.0, 0.0), ("missed", 0.0, 1.0))
    ]
)


def test_counterfactual_cells_and_reasons():
    with_cf = grid({"delta_influence": ("delta_influence", 1)}, counterfactual=["delta_influence"])
    t = table3(CF, with_cf)
    assert cell(t, "delta_influence", removed="detected").cell == "PSR 0.0 ± 0.0 / acc 99.0 ± 1.0 (40 removed, 2 seeds)"
    assert cell(t, "delta_influence", removed="missed").cell.startswith("PSR 100.0 ± 0.0")
    assert set(table3(None, grid({"delta_influence": ("delta_influence", 1)})).cell) == {
        "not run (add `delta_influence` to counterfactual:)"
    }
    assert set(table3(None, grid({"ekfac": ("ekfac", 1)}, counterfactual=["delta_influence"])).cell) == {
        "not run (`delta_influence` in counterfactual: but not in detectors)"
    }
    assert set(table3(CF.iloc[:0], with_cf).cell) == {"missing: no rows in counterfactual.csv (not run yet?)"}


def test_markdown_has_one_column_per_dataset_and_attack():
    g = grid({"delta_influence": ("delta_influence", 1)}, datasets=("digits", "cifar10"))
    df = pd.DataFrame(
        det_rows("delta_influence", [0.5], [1.0]) + det_rows("delta_influence", [0.25], [0.5], dataset="cifar10")
    )
    md = paper_tables(df, None, g)["table1"][1]
    assert "| detector | test points | digits / badnet | cifar10 / badnet |" in md
    assert "| Δ-Influence | 1 | 50.0 ± 0.0 / 100.0 ± 0.0 (1 seed) | 25.0 ± 0.0 / 50.0 ± 0.0 (1 seed) |" in md
    assert "| FreqDef | — | not run (add `frequency` to detectors) | not run (add `frequency` to detectors) |" in md


UNLEARNING = pd.DataFrame(
    [
        {
            "dataset": "digits",
            "attack": "badnet",
            "seed": s,
            "detector": d,
            "unlearner": u,
            "clean_acc": 0.99,
            "psr": psr,
            "seconds": 1.0,
        }
        for s in (0, 1)
        for d in ("delta_influence", "ekfac")
        for u, psr in (("none", 1.0), ("eu", 0.0))
    ]
)


def test_write_paper_writes_every_file_with_provenance_and_placeholders_that_say_why(tmp_path, monkeypatch):
    said = {}
    real = paper_figures.placeholder
    monkeypatch.setattr(
        paper_figures, "placeholder", lambda out, title, msg: (said.__setitem__(out, msg), real(out, title, msg))
    )
    outputs = {f"table{i}": str(tmp_path / f"table{i}.csv") for i in range(1, 6)}
    outputs |= {f"table{i}_md": str(tmp_path / f"table{i}.md") for i in range(1, 6)}
    outputs |= {f"figure{i}": str(tmp_path / f"figure{i}.png") for i in range(2, 6)}
    g = grid({"ekfac": ("ekfac", 1), "delta_influence": ("delta_influence", 1)})
    paper_figures.write_paper(DETECTION, UNLEARNING, None, g, {"delta_influence": {"digits / badnet": None}}, outputs)
    for key, path in outputs.items():
        assert (tmp_path / path).exists(), key
    for i in range(2, 6):
        assert (tmp_path / f"figure{i}.png").read_bytes()[:4] == b"\x89PNG"
    meta = json.loads((tmp_path / "table1.csv.meta.json").read_text())
    assert meta["provenance"]["seeds"] == [0, 1] and meta["n_rows"] == 5
    assert "seeds 0, 1" in (tmp_path / "table1.md").read_text().strip().splitlines()[-1]
    assert said == {outputs["figure5"]: "no SCRUB in unlearners (add `scrub` to unlearners)"}  # figures 2-4 have data
    said.clear()
    no_di = grid({"ekfac": ("ekfac", 1)}, unlearners=("none",))
    paper_figures.write_paper(DETECTION, UNLEARNING, None, no_di, {}, outputs)
    assert said[outputs["figure2"]] == said[outputs["figure4"]] == "not run (add `delta_influence` to detectors)"
    assert said[outputs["figure3"]] == "no EU in unlearners (add `eu` to unlearners)"


def test_influence_collapse_draws_the_first_seed_whose_attack_took(tmp_path, monkeypatch):
    """Figure 2's panels: a seed whose attack failed (no query) is skipped; with none, a placeholder says why."""
    import torch

    from unpoison.io import save_json, save_meta, save_torch
    from unpoison.report import figures
    from unpoison.status import attack_failed

    n_b, n = 4, 6
    failed, ok = tmp_path / "s0.pt", tmp_path / "s1.pt"
    save_torch({"scores": torch.empty(0, 1 + n_b, n)}, failed)
    save_meta(failed, status=attack_failed("target not flipped").to_dict())
    save_torch({"scores": torch.randn(1, 1 + n_b, n), "labels": torch.zeros(1, 1 + n_b, dtype=torch.long)}, ok)
    truth = tmp_path / "truth.json"
    save_json({"poison_indices": [0, 2]}, truth)
    drawn = {}
    monkeypatch.setattr(
        figures,
        "plot_collapse",
        lambda scores, poison, out, tau, k, names, title: drawn.update(
            shape=scores.shape, poisons=poison.nonzero()[0].tolist(), title=title
        ),
    )
    runs = [(0, str(failed), str(truth)), (1, str(ok), str(truth))]
    assert figures.plot_influence_collapse(runs, str(tmp_path / "f.png"), title="seed {seed}") == 1
    assert drawn == {"shape": (1 + n_b, n), "poisons": [0, 2], "title": "seed 1"}

    said = {}
    monkeypatch.setattr(figures, "placeholder", lambda out, title, msg: said.update(title=title, msg=msg))
    assert figures.plot_influence_collapse(runs[:1], str(tmp_path / "g.png"), title="seed {seed}") is None
    assert said == {
        "title": "seed 0",
        "msg": "no seed has an affected test point: n/a (attack failed: target not flipped)",
    }


def test_counterfactual_counts_the_seeds_whose_attack_took_and_gaussian_is_not_applicable():
    """A brew that failed on 1 of 3 seeds: the cell averages 2 seeds and says why the third is out; Gaussian
    poisoning has no affected point, so its column says n/a rather than 'missing'."""
    failed = "attack failed on 1 of 3 seeds (n/a (attack failed: target not flipped)): metrics over the others"
    cf = CF.assign(attack="witches_brew", n_seeds=3, n_ok=2, status=failed)
    g = grid(
        {"delta_influence": ("delta_influence", 1)},
        counterfactual=["delta_influence"],
        attacks=("witches_brew", "gaussian"),
    )
    t = table3(cf, g)
    brew = cell(t, "delta_influence", column=("digits", "witches_brew"), removed="detected")
    assert brew.cell == f"PSR 0.0 ± 0.0 / acc 99.0 ± 1.0 (40 removed, 2 seeds); {failed}"
    assert brew.n_seeds == 2
    gauss = cell(t, "delta_influence", column=("digits", "gaussian"), removed="missed").cell
    assert gauss.startswith("n/a (no affected test point: gaussian affects no test point")
