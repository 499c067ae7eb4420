"""End to end: a tiny digits run through Snakemake, then what a changed setting re-runs, determinism,
and the SLURM profile's resources. One real run (about a minute on 2 cores) serves every test here."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from snakemake_cli import snakemake_cmd

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "configs" / "tiny.yaml"
RUN = Path("results/digits/badnet/s3")


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        snakemake_cmd(workdir, *args, configfiles=[TINY]), capture_output=True, text=True, timeout=900
    )


def job_counts(output: str) -> dict[str, int]:
    """Parse the 'Job stats' table of a dry run."""
    counts = {}
    table = output.split("Job stats:")[-1]
    for line in table.splitlines():
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if m and m.group(1) != "total":
            counts[m.group(1)] = int(m.group(2))
    return counts


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("wf")
    proc = snakemake(workdir, "--cores", "2")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return workdir


def test_run_writes_tables_and_figures(finished_run):
    det = pd.read_csv(finished_run / "results/tables/detection.csv")
    assert list(det.columns) == [
        "dataset",
        "attack",
        "seed",
        "detector",
        "n_flagged",
        "true_positives",
        "n_poisons",
        "tpr",
        "precision",
        "uses_truth",
        "status",
        "state",
    ]
    assert (det.status == "ok").all() and (det.state == "ok").all()
    assert (
        set(det.detector) == {"delta_influence", "ekfac"} and (det.n_poisons == 40).all() and not det.uses_truth.any()
    )
    unl = pd.read_csv(finished_run / "results/tables/unlearning.csv")
    assert list(unl.columns) == [
        "dataset",
        "attack",
        "seed",
        "detector",
        "unlearner",
        "clean_acc",
        "psr",
        "seconds",
        "cpu_seconds",
        "budget_epochs",
        "cost_vs_eu",
        "cpu_cost_vs_eu",
        "status",
        "r_acc",
        "der",
        "psr_relearned",
        "acc_relearned",
        "state",
    ]
    for col in ("r_acc", "der", "psr_relearned", "acc_relearned"):  # BackdoorBench's metrics and the relearning check
        assert unl[col].between(0, 1).all(), col
    assert set(unl.unlearner) == {"none", "eu"}
    eu = unl[unl.unlearner == "eu"].merge(det, on=["dataset", "attack", "seed", "detector"])
    assert (eu.seconds > 0).all() and (eu.cpu_seconds > 0).all() and (eu.cost_vs_eu == 1.0).all()
    assert np.allclose(eu.budget_epochs, 12 * (1 - eu.n_flagged / 1437))  # tiny recipe: 12 epochs over the retain set
    before = unl[unl.unlearner == "none"]
    assert (before.psr > 0.5).all()  # the attack took on the poisoned model
    summary = pd.read_csv(finished_run / "results/tables/summary.csv")
    assert {"tpr_mean", "tpr_std", "psr_mean", "clean_acc_std", "attack_success", "status"} <= set(summary.columns)
    ref = summary[summary.detector == "—"]  # BadNet only: no clean model, the poisoned model's reference row
    assert list(ref.unlearner) == ["poisoned model"] and (summary.attack_success == 1).all()
    for fig in ("digits_badnet_delta_influence_influence_collapse.png", "digits_badnet_psr_vs_accuracy.png"):
        assert (finished_run / "results/figures" / fig).read_bytes()[:4] == b"\x89PNG"
    sweep = pd.read_csv(finished_run / "results/tables/sweep.csv")
    assert (
        set(sweep.detector) == {"delta_influence", "ekfac"} and len(sweep) == 5 * 4 + 4
    )  # τ × k (k < n_b = 6) + thresholds
    assert (finished_run / "results/figures/digits_badnet_threshold_sweep.png").read_bytes()[:4] == b"\x89PNG"
    cf = pd.read_csv(finished_run / "results/tables/counterfactual.csv").set_index("removed")
    found = det[det.detector == "delta_influence"].true_positives.iloc[0]
    assert cf.loc["detected", "n_removed_mean"] == found and cf.loc["missed", "n_removed_mean"] == 40 - found
    # the paper's tables and figures from this grid: every file exists, missing cells say why
    paper = finished_run / "results/paper"
    t1 = pd.read_csv(paper / "table1.csv")
    assert {"delta_influence", "ekfac"} <= set(t1.detector)
    di = t1[t1.detector == "delta_influence"].iloc[0]
    assert di.n_seeds == 1 and di.precision_mean == pytest.approx(
        det[det.detector == "delta_influence"].precision.iloc[0]
    )
    assert t1[t1.detector == "frequency"].cell.iloc[0] == "not run (add `frequency` to detectors)"
    t4 = pd.read_csv(paper / "table4.csv")  # no n_points: queries.count (1) points
    assert t4[t4.points == 1].detector.tolist() == ["delta_influence"] and "(1 seed)" in t4[t4.points == 1].cell.iloc[0]
    t3 = pd.read_csv(paper / "table3.csv").set_index("removed")
    assert t3.loc["detected", "cell"].startswith("PSR ") and t3.loc["detected", "n_removed_mean"] == found
    for n in range(1, 6):
        assert (paper / f"table{n}.md").read_text().startswith(f"**Table {n}") and (
            paper / f"table{n}.csv.meta.json"
        ).exists()
    for n in range(2, 6):
        assert (paper / f"figure{n}.png").read_bytes()[:4] == b"\x89PNG"
    # every job logged, and its resource record beside the log (the training job: its own CPU time and more
    # memory than a table job, which never imports torch)
    assert (finished_run / RUN / "logs/train_model.log").exists()
    records = {
        name: pd.read_csv(finished_run / path, sep="\t").iloc[0]
        for name, path in (
            ("train_model", f"{RUN}/benchmarks/train_model.tsv"),
            ("fit_ekfac", f"{RUN}/benchmarks/fit_ekfac.tsv"),
            ("score_probes", f"{RUN}/benchmarks/score_probes.tsv"),
            ("make_paper", "results/benchmarks/make_paper.tsv"),
        )
    }
    assert all(r["s"] > 0 and r["cpu_time"] > 0 for r in records.values())
    meta = json.loads((finished_run / RUN / "model.pt.meta.json").read_text())
    assert records["train_model"]["s"] >= meta["seconds"]  # the process's whole life ⊇ its training loop
    assert records["train_model"]["max_rss"] > records["make_paper"]["max_rss"]


def test_every_result_file_carries_provenance(finished_run):
    """Metrics JSONs, artifacts' meta files and tables record the code version, the config's hash (the same
    in every job), the seed(s) and the library versions."""
    import yaml

    from unpoison.provenance import code_version

    files = sorted(finished_run.glob("results/**/metrics/**/*.json")) + sorted(
        finished_run.glob("results/**/*.meta.json")
    )
    tables = sorted((finished_run / "results/tables").glob("*.csv")) + sorted(
        (finished_run / "results/paper").glob("*.csv")
    )
    assert len(files) >= 8 and len(tables) >= 9
    hashes = set()
    for f in files + [t.with_name(t.name + ".meta.json") for t in tables]:
        record = json.loads(f.read_text())["provenance"]
        assert record["code_version"] == code_version() and record["torch"] == torch.__version__
        assert record["kronfluence"] and record["python"]
        hashes.add(record["config_hash"])
        if "/s3/" in str(f) and "metrics" in str(f):  # a per-run result (the sweep CSV lists its seed as a table)
            assert record.get("seed", (record.get("seeds") or [None])[0]) == 3
    assert len(hashes) == 1 and re.fullmatch(r"[0-9a-f]{12}", hashes.pop())
    assert json.loads((finished_run / "results/tables/summary.csv.meta.json").read_text())["provenance"]["seeds"] == [3]
    footer = (finished_run / "results/tables/summary.md").read_text().strip().splitlines()[-1]
    assert footer.startswith("_Provenance: code ") and "seeds 3" in footer
    assert yaml.safe_load(TINY.read_text())  # the config the hash was made from exists


ALL_DETECTORS = (
    "detectors=[delta_influence,label_only,image_only,ekfac,activation_clustering,spectral_signatures,frequency]"
)
DEFENDER_RULES = (
    "detect",
    "unlearn",
    "score_probes",
    "fit_ekfac",
    "train_model",
    "extract_features",
    "train_detector_model",
)


def test_truth_is_never_an_input_of_detection_or_unlearning(finished_run):
    proc = snakemake(finished_run, "-n", "--forceall", "--cores", "1", "--config", ALL_DETECTORS)
    assert proc.returncode == 0, proc.stderr[-2000:]
    blocks = proc.stdout.split("\n\n")
    seen = set()
    for block in blocks:
        m = re.search(rf"rule ({'|'.join(DEFENDER_RULES)}):", block)
        if m:
            seen.add(m.group(1))
            assert "truth.json" not in block.split("output:")[0], block
    assert seen == set(DEFENDER_RULES)
    freq = next(b for b in blocks if "rule train_detector_model:" in b)
    assert "results/digits/clean.pt" in freq.split("output:")[0] and "poisoned.pt" not in freq  # clean images only


def test_only_the_oracle_detect_jobs_read_truth(tmp_path):
    proc = snakemake(
        tmp_path,
        "-n",
        "--cores",
        "1",
        "--config",
        "detectors=[delta_influence,ekfac,activation_clustering,oracle_10,oracle_100]",
        "unlearners=[none,ssd]",
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    blocks = proc.stdout.split("\n\n")
    detect = {
        re.search(r"flagged/(\w+)\.npy", b).group(1): b.split("output:")[0] for b in blocks if "rule detect:" in b
    }
    assert set(detect) == {"delta_influence", "ekfac", "activation_clustering", "oracle_10", "oracle_100"}
    for name, inputs in detect.items():
        assert ("truth.json" in inputs) == name.startswith("oracle"), (name, inputs)
    assert "scores/" not in detect["oracle_10"] and "poisoned.pt" not in detect["oracle_10"]  # truth only
    unlearn = [b for b in blocks if "rule unlearn:" in b]
    assert len(unlearn) == 5 and not any("truth.json" in b.split("output:")[0] for b in unlearn)


def test_changing_tau_reruns_detection_only(finished_run):
    proc = snakemake(
        finished_run,
        "-n",
        "--cores",
        "1",
        "--config",
        "detector_settings={delta_influence: {tau: -1.0, k: 1}, ekfac: {threshold: 0.0}}",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    jobs = job_counts(proc.stdout)
    assert jobs.get("detect") == 1  # delta_influence only; ekfac untouched
    assert jobs.get("unlearn") == 1 and jobs.get("make_tables") == 1
    for expensive in ("train_model", "fit_ekfac", "score_probes", "poison_dataset", "select_queries"):
        assert expensive not in jobs


def test_changing_k_reruns_detection_only(finished_run):
    proc = snakemake(
        finished_run,
        "-n",
        "--cores",
        "1",
        "--config",
        "detector_settings={delta_influence: {tau: 0.0, k: 2}, ekfac: {threshold: 0.0}}",
    )
    jobs = job_counts(proc.stdout)
    assert (
        jobs.get("detect") == 1 and "fit_ekfac" not in jobs and "score_probes" not in jobs and "train_model" not in jobs
    )


@pytest.mark.parametrize(
    "config",
    [
        ["device=cpu"],
        ["detector_settings={delta_influence: {tau: 0, k: 1}, ekfac: {threshold: 0}}"],  # ints for the floats
        ["detector_settings={delta_influence: {n_points: null}}"],  # an explicit default
        ["dataset_settings={digits: {train: {eval_batch_size: 7}}}"],
        [
            "influence={scores: {train_batch_size: 33, query_batch_size: 5, num_workers: 0, pin_memory: false}, "
            "factors: {batch_size: 61}}"
        ],
    ],
    ids=["device", "int-tau", "explicit-default", "eval-batch", "batch-sizes"],
)
def test_execution_only_and_equivalent_settings_rerun_nothing(finished_run, config):
    proc = snakemake(finished_run, "-n", "--cores", "1", "--config", *config)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Nothing to be done" in proc.stdout + proc.stderr, job_counts(proc.stdout)


def test_a_science_setting_of_the_scores_reruns_scoring_but_not_training(finished_run):
    proc = snakemake(finished_run, "-n", "--cores", "1", "--config", "influence={scores: {damping_factor: 1.0e-6}}")
    jobs = job_counts(proc.stdout)
    assert jobs.get("score_probes") == 1 and "fit_ekfac" not in jobs and "train_model" not in jobs


def test_reselecting_the_queries_rescores_but_never_refits_the_factors(finished_run):
    # fit_ekfac reads queries.pt only to skip a fit with nothing to score; ancient() keeps a new query set
    # (another queries.count, as experiments/points.yaml sets) from refitting the model's factors
    proc = snakemake(finished_run, "-n", "--cores", "1", "--config", "queries={count: 2}")
    jobs = job_counts(proc.stdout)
    assert jobs.get("select_queries") == 1 and jobs.get("score_probes") == 1, jobs
    assert "fit_ekfac" not in jobs and "train_model" not in jobs


def test_ekfac_is_fitted_once_per_model_for_all_probes_and_detectors(tmp_path):
    proc = snakemake(
        tmp_path,
        "-n",
        "--cores",
        "1",
        "--config",
        "seeds=[0,1]",
        "detectors=[delta_influence,label_only,image_only,ekfac]",
        "unlearners=[none,eu,cf]",
    )
    jobs = job_counts(proc.stdout)
    assert jobs["train_model"] == 2 and jobs["fit_ekfac"] == 2 and jobs["score_probes"] == 2
    assert jobs["detect"] == 8 and jobs["unlearn"] == 16
    assert jobs["make_paper"] == 1  # the paper's tables and figures: one job for the whole grid
    assert (
        "train_clean" not in jobs and jobs["evaluate_models"] == 2
    )  # BadNet only: no clean model; one evaluation per run


# A second attack built on the clean model, registered in the Snakemake process itself (Witches' Brew will be one).
WITH_CLEAN_DUMMY = """
import sys
sys.path.insert(0, {root!r})
from unpoison.attacks import register_attack
from unpoison.attacks.badnet import BadNet

@register_attack("clean_dummy")
class CleanDummy(BadNet):
    needs_clean_model = True

from snakemake.cli import main
main(sys.argv[1:])
"""


def test_one_clean_model_per_dataset_and_seed_however_many_attacks_use_it(tmp_path):
    second = tmp_path / "second_dataset.yaml"
    badnet = "{count: 40, pattern: checkerboard, size: 3, value: 255, margin: 0}"
    second.write_text(
        "datasets: [digits, digits_b]\nattacks: [badnet, smooth, clean_dummy]\nseeds: [0, 1, 2]\nunlearners: [none]\n"
        "dataset_settings:\n  digits:\n    attacks:\n      clean_dummy: " + badnet + "\n"
        "  digits_b:\n    source: sklearn_digits\n    split_seed: 1\n"
        "    model: {name: digits_cnn, width: 8}\n    train: {epochs: 12, milestones: [8]}\n"
        "    attacks:\n      badnet: " + badnet + "\n      clean_dummy: " + badnet + "\n"
        "      smooth: {count: 40, sigma: 1.5}\n"
    )
    cmd = [
        sys.executable,
        "-c",
        WITH_CLEAN_DUMMY.format(root=str(ROOT)),
        "-n",
        "--snakefile",
        str(ROOT / "Snakefile"),
        "--directory",
        str(tmp_path),
        "--configfile",
        str(TINY),
        str(second),
        "--cores",
        "1",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    jobs = job_counts(proc.stdout)
    assert jobs["train_clean"] == 2 * 3  # datasets × seeds, shared by smooth and clean_dummy
    assert jobs["train_model"] == jobs["evaluate_models"] == 2 * 3 * 3  # every run gets the clean reference row
    assert jobs["poison_dataset"] == 2 * 3 * 3  # one rule for every attack
    blocks = proc.stdout.split("\n\n")
    dummy = next(b for b in blocks if "rule poison_dataset:" in b and "digits_b/clean_dummy/s2/" in b)
    assert "results/digits_b/clean/s2/model.pt" in dummy.split("output:")[0]
    evaluate = next(b for b in blocks if "rule evaluate_models:" in b and "digits_b/clean_dummy/s2/" in b)
    assert "results/digits_b/clean/s2/model.pt" in evaluate.split("output:")[0]
    plain = next(b for b in blocks if "rule poison_dataset:" in b and "/badnet/" in b)
    assert "/clean/s" not in plain.split("output:")[0]  # BadNet does not wait for a clean model


def test_named_variants_of_one_detector_share_the_score_job(tmp_path):
    variants = (
        "detector_settings={di1: {method: delta_influence, n_points: 1}, di2: {method: delta_influence, "
        "n_points: 2, k: 2}, ek2: {method: ekfac, n_points: 2}}"
    )
    proc = snakemake(
        tmp_path,
        "-n",
        "--cores",
        "1",
        "--config",
        "queries={count: 2}",
        "unlearners=[none]",
        "detectors=[delta_influence,ekfac,di1,di2,ek2]",
        variants,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    jobs = job_counts(proc.stdout)
    assert jobs["score_probes"] == 1 and jobs["fit_ekfac"] == 1 and jobs["detect"] == 5


def test_unlearn_on_narrows_an_unlearner_to_some_detectors(tmp_path):
    """unlearn_on keeps a grid to the (detector, unlearner) pairs it reports: SCRUB on Δ-Influence only, EU on both."""
    proc = snakemake(
        tmp_path,
        "-n",
        "--cores",
        "1",
        "--config",
        "seeds=[0,1]",
        "detectors=[delta_influence,ekfac]",
        "unlearners=[none,eu,scrub]",
        "unlearn_on={scrub: [delta_influence]}",
        "counterfactual=[]",
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    jobs = job_counts(proc.stdout)
    assert jobs["unlearn"] == 2 * 3 and jobs["evaluate_models"] == 2
    assert "unlearned/ekfac/scrub" not in proc.stdout and "unlearned/delta_influence/scrub" in proc.stdout


def test_control_queries_are_scored_in_the_same_pass_and_read_only_by_their_detector(tmp_path):
    proc = snakemake(
        tmp_path,
        "-n",
        "--cores",
        "1",
        "-p",
        "--config",
        "unlearners=[none]",
        "counterfactual=[]",
        "detectors=[delta_influence,delta_influence_controls,ekfac]",
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    jobs = job_counts(proc.stdout)
    assert jobs["score_probes"] == 1 and jobs["select_controls"] == 1 and jobs["detect"] == 3
    blocks = proc.stdout.split("\nrule ")
    score_job = next(b for b in blocks if b.startswith("score_probes:"))
    assert "controls.pt" in score_job and "scores/controls_both.pt" in score_job
    for b in blocks:
        if b.startswith("detect:"):
            assert ("controls_both.pt" in b) == ("delta_influence_controls.npy" in b)
        if b.startswith("select_controls:"):
            assert "truth.json" not in b
    without = snakemake(tmp_path, "-n", "--cores", "1", "--config", "unlearners=[none]", "detectors=[delta_influence]")
    assert "select_controls" not in job_counts(without.stdout)


def test_freqdef_is_trained_once_per_dataset_and_features_extracted_once_per_model(tmp_path):
    second = tmp_path / "second_dataset.yaml"  # another digits split: a second dataset
    second.write_text(
        "datasets: [digits, digits_b]\n"
        "dataset_settings:\n  digits_b:\n    source: sklearn_digits\n    split_seed: 1\n"
        "    model: {name: digits_cnn, width: 8}\n    train: {epochs: 12, milestones: [8]}\n"
        "    attacks: {badnet: {count: 40, pattern: checkerboard, size: 3, value: 255, margin: 0}}\n"
    )
    grid = ["seeds=[0,1,2]", "detectors=[activation_clustering,spectral_signatures,frequency]", "unlearners=[none]"]
    cmd = snakemake_cmd(tmp_path, "--cores", "1", "--config", *grid, configfiles=[TINY, second], dry_run=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    jobs = job_counts(proc.stdout)
    assert jobs["train_model"] == 6 and jobs["detect"] == 18
    assert jobs["train_detector_model"] == 2  # one per dataset, whatever the seeds and attacks
    assert jobs["extract_features"] == 6  # one per model, shared by activation clustering and spectral signatures
    assert "fit_ekfac" not in jobs and "score_probes" not in jobs  # no detector here reads influence


def test_feature_and_frequency_detectors_run_on_the_tiny_model(finished_run):
    targets = [str(RUN / f"flagged/{d}.npy") for d in ("activation_clustering", "spectral_signatures", "frequency")]
    proc = snakemake(finished_run, "--cores", "2", *targets, "--config", "detector_settings={frequency: {epochs: 2}}")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    feats = torch.load(finished_run / RUN / "features.pt", weights_only=True)
    assert feats.shape == (1437, 32) and torch.isfinite(feats).all()  # digits_cnn width 8: 4 × 8 features
    meta = json.loads((finished_run / "results/digits/detector_models/frequency.pt.meta.json").read_text())
    assert 0.0 <= meta["holdout_accuracy"] <= 1.0 and meta["settings"] == {"seed": 0, "epochs": 2, "lr": 1.0}
    n = {d: len(np.load(finished_run / t)) for d, t in zip(("ac", "ss", "freq"), targets)}
    assert 0 < n["ac"] < 1437 and n["ss"] == sum(-(-15 * c // 100) for c in np.bincount(_labels(finished_run)))
    assert (finished_run / "results/benchmarks/digits/train_detector_model/frequency.tsv").exists()
    assert (finished_run / RUN / "benchmarks/extract_features.tsv").exists()
    proc = snakemake(
        finished_run,
        "-n",
        "--cores",
        "1",
        *targets,
        "--config",
        "detector_settings={frequency: {epochs: 2, threshold: 0.9}}",
    )
    jobs = job_counts(proc.stdout)
    assert jobs.get("detect") == 1 and "train_detector_model" not in jobs  # a threshold re-runs detection only


def test_a_plugin_detector_runs_through_the_workflow_without_editing_the_rules(finished_run, tmp_path):
    """The worked example of docs/architecture.md: one module, registered through `plugins:`, gets its own detect
    job with the inputs it declared and its rows in the tables; no rule mentions it."""
    from docs_examples import plugin_example

    module, name = plugin_example()
    (tmp_path / "my_detectors.py").write_text(module)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    target = str(RUN / f"metrics/detection/{name}.json")
    grid = ["plugins=[my_detectors]", f"detectors=[delta_influence,ekfac,{name}]"]
    cmd = snakemake_cmd(finished_run, "--cores", "2", target, "--config", *grid, configfiles=[TINY])
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    row = json.loads((finished_run / target).read_text())
    assert row["detector"] == name and row["state"] == "ok" and row["n_flagged"] > 0
    assert name not in "".join(p.read_text() for p in (ROOT / "rules").glob("*.smk"))


def test_shards_rerun_only_influence_and_give_the_same_flags(finished_run, tmp_path):
    """influence.shards: 3 splits the covariance, lambda and score passes into 3 jobs each; nothing upstream of the
    influence steps re-runs, and Δ-Influence and EK-FAC flag the same points as with one job (the scores differ from
    the single pass only by float summation order: tests/test_influence_shards.py)."""
    import shutil

    shards = "influence={n_b: 6, shards: 3}"
    plan = job_counts(snakemake(finished_run, "-n", "--cores", "1", "--config", shards).stdout)
    assert plan["fit_covariance_shard"] == plan["fit_lambda_shard"] == plan["score_shard"] == 3, plan
    assert plan["aggregate_covariance"] == plan["fit_ekfac"] == plan["score_probes"] == 1
    assert not {"train_model", "poison_dataset", "select_queries", "prepare_dataset"} & set(plan)
    copy = tmp_path / "sharded"
    shutil.copytree(finished_run, copy, symlinks=True)
    targets = [str(RUN / f"flagged/{d}.npy") for d in ("delta_influence", "ekfac")]
    proc = snakemake(copy, "--cores", "2", *targets, "--config", shards)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for t in targets:
        assert np.array_equal(np.load(finished_run / t), np.load(copy / t)), t
    one = torch.load(finished_run / RUN / "scores/both.pt", weights_only=True)["scores"]
    three = torch.load(copy / RUN / "scores/both.pt", weights_only=True)["scores"]
    assert torch.allclose(one, three, rtol=1e-4, atol=1e-4 * float(one.abs().max()))


def _labels(workdir: Path) -> np.ndarray:
    return torch.load(workdir / RUN / "poisoned.pt", weights_only=True)["y_train"].numpy()


def test_same_seed_twice_gives_identical_flags(finished_run, tmp_path):
    second = tmp_path / "again"
    second.mkdir()
    proc = snakemake(second, "--cores", "2", str(RUN / "flagged/delta_influence.npy"), str(RUN / "flagged/ekfac.npy"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    for det in ("delta_influence", "ekfac"):
        a = np.load(finished_run / RUN / f"flagged/{det}.npy")
        b = np.load(second / RUN / f"flagged/{det}.npy")
        assert a.size > 0 and np.array_equal(a, b)


def test_slurm_profile_declares_gpu_memory_and_runtime(tmp_path):
    proc = snakemake(tmp_path, "-n", "--profile", str(ROOT / "profiles/slurm"))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    blocks = proc.stdout.split("\n\n")
    for rule in ("train_model", "fit_ekfac", "score_probes", "unlearn"):
        block = next(b for b in blocks if f"rule {rule}:" in b)
        res = block.split("resources:")[1].splitlines()[0]
        for key in ("gpu=", "mem_mb=", "runtime="):
            assert key in res, (rule, res)


def test_paper_grid_trains_and_fits_once_per_model_with_gpu_resources(tmp_path):
    cmd = snakemake_cmd(tmp_path, configfiles=[ROOT / "experiments/paper.yaml"], dry_run=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    jobs = job_counts(proc.stdout)
    models = 3 * 2 * 3  # datasets × attacks (badnet, smooth) × seeds
    assert jobs["train_model"] == jobs["fit_ekfac"] == jobs["score_probes"] == jobs["extract_features"] == models
    assert jobs["prepare_dataset"] == jobs["train_detector_model"] == 3
    assert jobs["train_clean"] == 3 * 3 and jobs["poison_dataset"] == models and jobs["evaluate_models"] == models
    assert jobs["detect"] == models * 7 and jobs["unlearn"] == models * 7 * 2
    assert jobs["make_paper"] == 1  # one job for 3 datasets × 7 detectors × 3 unlearners
    blocks = proc.stdout.split("\n\n")
    for rule in (
        "train_model",
        "fit_ekfac",
        "score_probes",
        "unlearn",
        "extract_features",
        "train_detector_model",
        "train_clean",
        "evaluate_models",
        "poison_dataset",
    ):
        block = next(b for b in blocks if f"rule {rule}:" in b and "/badnet/" not in b)
        res = block.split("resources:")[1].splitlines()[0]
        assert "gpu=1" in res and "mem_mb=" in res and "runtime=" in res, (rule, res)
    badnet = next(b for b in blocks if "rule poison_dataset:" in b and "/badnet/" in b)
    assert "gpu=0" in badnet.split("resources:")[1].splitlines()[0]  # BadNet's poisoning needs no GPU


def test_failing_job_writes_its_traceback_to_the_rule_log(tmp_path):
    """A train_model job on an unreadable clean.pt fails; its log holds the traceback and the message."""
    run = tmp_path / RUN
    run.mkdir(parents=True)
    planted = [tmp_path / "results/digits/clean.pt", run / "poisoned.pt", run / "truth.json"]
    for i, path in enumerate(planted):
        path.write_bytes(b"not a torch file")
        os.utime(path, (1_000_000 + i, 1_000_000 + i))  # each older than what is made from it
    # mtime only: files without Snakemake metadata would otherwise count as "code changed" and be rebuilt
    proc = snakemake(tmp_path, "--rerun-triggers", "mtime", "--cores", "1", str(RUN / "model.pt"))
    assert proc.returncode != 0
    log = (run / "logs/train_model.log").read_text()
    assert "Traceback (most recent call last)" in log
    assert "clean.pt is unreadable" in log and "prepare_dataset" in log
    assert "clean.pt is unreadable" in proc.stdout + proc.stderr  # the console still shows it
    assert not (run / "model.pt").exists()
