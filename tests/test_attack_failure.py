"""End to end: an attack that fails, or that affects no test point, does not stop the grid. tiny.yaml +
attack_failure.yaml runs BadNet, a smooth trigger too weak to take (two poisons, values ≤ 0.02) and Gaussian
poisoning on one digits grid without --keep-going: the smooth run records "attack failed", its detection and
unlearning rows are n/a with the reason, BadNet's run completes, the clean model (train_clean) gives the
reference row, and the Gaussian run's query-based detector is n/a while the oracle's forget set is unlearned and
scored. One real run (~2 min on 2 idle cores) serves all."""

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from snakemake_cli import snakemake_cmd

from unpoison.status import State, read_status

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = [ROOT / "tests/configs/tiny.yaml", ROOT / "tests/configs/attack_failure.yaml"]
SMOOTH, BADNET, GAUSS = (
    Path("results/digits/smooth/s3"),
    Path("results/digits/badnet/s3"),
    Path("results/digits/gaussian/s3"),
)
FAILED = "n/a (attack failed: only "
TABLES = ("summary.csv", "gus.csv", "sweep.csv", "counterfactual.csv")
FIGURES = (
    "digits_smooth_delta_influence_influence_collapse.png",
    "digits_badnet_delta_influence_influence_collapse.png",
    "digits_smooth_psr_vs_accuracy.png",
    "digits_smooth_threshold_sweep.png",
    "digits_gaussian_gus.png",
)
TARGETS = [f"results/tables/{t}" for t in TABLES] + [f"results/figures/{f}" for f in FIGURES]


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = snakemake_cmd(workdir, *args, configfiles=CONFIGS)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=1800)


def job_counts(output: str) -> dict[str, int]:
    table = output.split("Job stats:")[-1]
    return {
        m.group(1): int(m.group(2))
        for line in table.splitlines()
        if (m := re.match(r"^(\w+)\s+(\d+)$", line.strip())) and m.group(1) != "total"
    }


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("failure")
    # no --keep-going: the failed attack must not fail a job. The tables and the figures read below (not `all`: the
    # paper and the other figures add jobs, not cases)
    proc = snakemake(workdir, "--cores", "2", *TARGETS)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return workdir


def test_the_failure_is_recorded_where_queries_are_chosen(run):
    q = torch.load(run / SMOOTH / "queries.pt", weights_only=True)
    status = read_status(run / SMOOTH / "queries.pt")
    assert (
        status.state is State.ATTACK_FAILED
        and status.reason.startswith("only ")
        and len(q["x"]) == len(q["labels"]) == 0
    )
    assert read_status(run / BADNET / "queries.pt").ok
    names = {p.name for p in (run / SMOOTH / "ekfac").iterdir()} - {".snakemake_timestamp"}
    assert names == {"SKIPPED.json"}  # no EK-FAC fit for a run whose attack failed
    assert any(p.suffix == ".safetensors" for p in (run / BADNET / "ekfac").rglob("*"))
    for probe in ("base", "both"):
        scores = torch.load(run / SMOOTH / f"scores/{probe}.pt", weights_only=True)
        assert read_status(run / SMOOTH / f"scores/{probe}.pt") == status and scores["scores"].shape[0] == 0
    for det in ("delta_influence", "oracle_100"):
        assert np.load(run / SMOOTH / f"flagged/{det}.npy").size == 0
        assert read_status(run / SMOOTH / f"flagged/{det}.npy") == status
        assert np.load(run / BADNET / f"flagged/{det}.npy").size > 0


def test_detection_and_unlearning_rows_of_the_failed_run_are_not_applicable(run):
    det = pd.read_csv(run / "results/tables/detection.csv")
    smooth, badnet = det[det.attack == "smooth"], det[det.attack == "badnet"]
    assert len(smooth) == len(badnet) == 2
    assert smooth.status.str.startswith(FAILED).all() and smooth.tpr.isna().all() and (smooth.n_poisons == 2).all()
    assert (badnet.status == "ok").all() and (badnet.tpr > 0.5).all()
    unl = pd.read_csv(run / "results/tables/unlearning.csv")
    s_eu = unl[(unl.attack == "smooth") & (unl.unlearner == "eu")]
    s_none = unl[(unl.attack == "smooth") & (unl.unlearner == "none")]
    assert s_eu.status.str.startswith(FAILED).all() and s_eu.psr.isna().all() and (s_eu.seconds == 0).all()
    assert s_none.status.str.startswith(FAILED).all() and (s_none.psr < 0.1).all()  # the PSR is measured
    assert (unl[unl.attack == "badnet"].status == "ok").all() and unl[unl.attack == "badnet"].psr.notna().all()
    cf = pd.read_csv(run / "results/tables/counterfactual.csv")
    assert (cf[cf.attack == "smooth"].n_ok == 0).all() and (cf[cf.attack == "badnet"].n_ok == 1).all()
    assert set(pd.read_csv(run / "results/tables/sweep.csv").attack) == {"badnet"}  # the failed run has no scores


def test_gaussian_run_has_no_query_and_scores_the_oracles_unlearning(run):
    """No test point is affected: no influence scores are computed, Δ-Influence is n/a (not "attack failed"), the
    oracle flags every noisy point, EU on them runs, and every model gets a Gaussian Unlearning Score."""
    q = torch.load(run / GAUSS / "queries.pt", weights_only=True)
    assert read_status(run / GAUSS / "queries.pt").state is State.NO_QUERY and len(q["x"]) == 0
    assert not (run / GAUSS / "scores").exists() and not (run / GAUSS / "factors").exists()
    assert read_status(run / GAUSS / "flagged/delta_influence.npy").state is State.NO_QUERY
    assert read_status(run / GAUSS / "flagged/oracle_100.npy").ok  # the oracle reads no query: it ran
    truth = json.loads((run / GAUSS / "truth.json").read_text())
    assert np.array_equal(np.load(run / GAUSS / "flagged/oracle_100.npy"), truth["poison_indices"])
    det = pd.read_csv(run / "results/tables/detection.csv").set_index(["attack", "detector"])
    assert det.loc[("gaussian", "oracle_100"), "tpr"] == 1.0 and np.isnan(
        det.loc[("gaussian", "delta_influence"), "tpr"]
    )
    gus = pd.read_csv(run / "results/tables/gus.csv").set_index(["detector", "unlearner"])
    assert set(gus.index) >= {("—", "poisoned model"), ("oracle_100", "eu"), ("delta_influence", "eu")}
    assert gus.loc[("delta_influence", "eu"), "status"].startswith("n/a (no affected test point")
    for key in (("—", "poisoned model"), ("oracle_100", "eu")):
        row = gus.loc[key]
        assert row.status == "ok" and row.gus_n_points == 30 and np.isfinite(row.gus_mean) and 0 <= row.gus_auc <= 1
        assert abs(row.gus_null_mean) < 0.3 and 0.7 < row.gus_null_std < 1.3  # 3,000 null draws: calibrated
    assert "| oracle_100 | eu |" in (run / "results/tables/gus.md").read_text()
    assert (run / "results/figures/digits_gaussian_gus.png").read_bytes()[:4] == b"\x89PNG"
    assert not (run / "results/figures/digits_gaussian_delta_influence_influence_collapse.png").exists()


def test_summary_has_the_attack_success_column_and_the_reference_rows(run):
    summary = pd.read_csv(run / "results/tables/summary.csv")
    defence = summary[(summary.detector != "—") & (summary.attack != "gaussian")]
    assert (defence[defence.attack == "smooth"].attack_success == 0).all()
    assert (defence[defence.attack == "badnet"].attack_success == 1).all()
    assert defence[defence.attack == "smooth"].status.str.startswith(FAILED).all()
    ref = summary[(summary.detector == "—") & (summary.attack != "gaussian")].set_index(["attack", "unlearner"])
    assert set(ref.index) == {(a, m) for a in ("badnet", "smooth") for m in ("clean model", "poisoned model")}
    assert (
        ref.loc[("smooth", "poisoned model"), "attack_success"] == 0
        and ref.loc[("badnet", "poisoned model"), "attack_success"] == 1
    )
    assert ref.loc[("badnet", "clean model"), "clean_acc_mean"] > 0.9  # the clean model is a working classifier
    assert ref.loc[("badnet", "clean model"), "psr_mean"] < 0.2  # that never learnt the trigger
    md = (run / "results/tables/summary.md").read_text()
    assert "| attack ok |" in md and "| 0/1 |" in md and FAILED in md and "| clean model |" in md
    for fig in (
        "digits_smooth_delta_influence_influence_collapse.png",
        "digits_badnet_delta_influence_influence_collapse.png",
        "digits_smooth_psr_vs_accuracy.png",
        "digits_smooth_threshold_sweep.png",
    ):
        assert (run / "results/figures" / fig).read_bytes()[:4] == b"\x89PNG"


def test_clean_model_and_smooth_artifacts(run):
    clean = run / "results/digits/clean/s3"
    assert json.loads((clean / "model.pt.meta.json").read_text())["training_set"] == "clean"
    assert (clean / "logs/train_clean.log").exists() and (clean / "benchmarks/train_clean.tsv").exists()
    truth = json.loads((run / SMOOTH / "truth.json").read_text())
    trigger = np.load(run / SMOOTH / "artifacts/trigger.npy")
    assert np.array_equal(trigger, np.asarray(truth["trigger"], dtype=np.float32))
    assert trigger.shape == (1, 8, 8) and trigger.min() >= 0 and trigger.max() <= 0.02 + 1e-7
    assert np.load(run / SMOOTH / "artifacts/example.npy").shape == (2, 1, 8, 8)
    meta = json.loads((run / SMOOTH / "poisoned.pt.meta.json").read_text())
    assert meta["params"]["magnitude"] == 0.02 and meta["clean_model"] == "results/digits/clean/s3/model.pt"
    for name in ("trigger", "example"):
        assert (run / SMOOTH / f"artifacts/{name}.png").read_bytes()[:4] == b"\x89PNG"
    # an attack that returns no arrays still shows one poisoned training image before and after
    example = np.load(run / BADNET / "artifacts/example.npy")
    assert example.shape == (2, 1, 8, 8) and not np.array_equal(example[0], example[1])


def test_changing_a_detector_setting_reruns_neither_the_clean_model_nor_poisoning(run):
    proc = snakemake(
        run,
        "-n",
        "--cores",
        "1",
        "--config",
        "detector_settings={delta_influence: {tau: -1.0, k: 1}, ekfac: {threshold: 0.0}}",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    jobs = job_counts(proc.stdout)
    assert jobs.get("detect") == 3  # delta_influence of the three runs
    for rule in ("train_clean", "poison_dataset", "train_model", "select_queries"):
        assert rule not in jobs, jobs
