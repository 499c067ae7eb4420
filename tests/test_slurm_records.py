"""unpoison.slurm_records: a run's SLURM job records by rule, without a cluster (the SLURM test uses it on one)."""

from unpoison.slurm_records import job_records


def test_records_are_grouped_by_rule_and_limited_to_the_runs_jobs(tmp_path):
    logs = tmp_path / ".snakemake/slurm_logs"
    (logs / "rule_fit_ekfac/digits_badnet_0").mkdir(parents=True)
    (logs / "rule_detect").mkdir(parents=True)
    (logs / "rule_fit_ekfac/digits_badnet_0/11.log").touch()
    (logs / "rule_detect/12.log").touch()
    (logs / "rule_detect/13.log").touch()
    lines = [
        f"JobId=11 UserId=root(0) JobState=COMPLETED WorkDir={tmp_path} Gres=gpu:1 Start=2026-12-06T10:00:00",
        f"JobId=12 JobState=COMPLETED WorkDir={tmp_path} Start=2026-12-06T10:01:00",
        f"JobId=13 JobState=FAILED WorkDir={tmp_path}",
        f"JobId=14 JobState=COMPLETED WorkDir={tmp_path}",  # no log of this run: another tool's job
        f"JobId=12 JobState=COMPLETED WorkDir={tmp_path}/other",  # the same id in another folder's run
    ]
    records = job_records(tmp_path, lines)
    assert sorted(records) == ["detect", "fit_ekfac"]
    assert [r["JobId"] for r in records["detect"]] == ["12", "13"]
    (fit,) = records["fit_ekfac"]
    assert fit["Gres"] == "gpu:1" and fit["Start"] == "2026-12-06T10:00:00" and fit["UserId"] == "root(0)"
