"""The four BackdoorBench attacks plug into the DAG from their registry entries alone: a dry run with
config.yaml's digits settings lists one poison job per attack, and only the label-consistent attack waits for the
clean model."""

import re
import subprocess
from pathlib import Path

import pytest
import yaml
from snakemake_cli import snakemake_cmd

from unpoison.attacks import ATTACKS

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "configs" / "tiny.yaml"
NEW = ("blend", "wanet", "sig", "label_consistent")


def test_dry_run_lists_a_poison_job_per_attack_and_the_clean_model_only_for_label_consistent(tmp_path):
    config = ["--config", f"attacks=[{','.join(NEW)}]", "unlearners=[none]"]
    cmd = snakemake_cmd(tmp_path, "--cores", "1", *config, configfiles=[TINY], dry_run=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    jobs = {
        m.group(1): int(m.group(2))
        for m in re.finditer(r"^(\w+)\s+(\d+)$", proc.stdout.split("Job stats:")[-1], re.MULTILINE)
    }
    assert jobs["poison_dataset"] == len(NEW) and jobs["train_clean"] == 1
    blocks = proc.stdout.split("\n\n")
    for attack in NEW:
        block = next(b for b in blocks if "rule poison_dataset:" in b and f"/{attack}/s3/" in b)
        inputs, outputs = block.split("output:")[0], block.split("output:")[1].split("log:")[0]
        assert ("/clean/s3/model.pt" in inputs) == (attack == "label_consistent"), block
        assert f"{attack}/s3/artifacts" in outputs, block  # the trigger and an example land there
        assert ATTACKS[attack].display_name and ATTACKS[attack].citation
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("path", ["config.yaml", "experiments/cifar10-cpu.yaml", "experiments/paper.yaml"])
def test_proposed_config_entries_are_accepted(path):
    cfg = yaml.safe_load((ROOT / path).read_text())
    entries = [(a, s["attacks"][a]) for s in cfg["dataset_settings"].values() for a in NEW if a in s["attacks"]]
    assert {a for a, _ in entries} == set(NEW)
    for attack, entry in entries:
        ATTACKS.create(attack, entry)
