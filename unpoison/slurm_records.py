"""The SLURM records of the jobs one Snakemake run submitted, by rule.

SLURM's `key=value` lines (the job-completion log `jobcomp.txt` of `JobCompType=jobcomp/filetxt`, or `scontrol show
job --oneliner`) name no Snakemake rule; the SLURM executor plugin writes each job's log to
`.snakemake/slurm_logs/rule_<rule>/[<wildcards>/]<jobid>.log`, which does. Used by the SLURM test
(tests/test_slurm.py) and the shard benchmark (bench/slurm_shards.py) to read submit, start and end times and the
requested resources from the scheduler itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

_FIELD = re.compile(r"([\w:/]+)=(\S*)")


def rules_of_jobs(workdir: str | Path) -> dict[str, str]:
    """SLURM job id → rule, for every job the run in ``workdir`` submitted (from the plugin's log folder)."""
    logs = Path(workdir) / ".snakemake/slurm_logs"
    rule_of = {}
    for log in logs.rglob("*.log"):
        rule_dir = next(p for p in log.relative_to(logs).parts if p.startswith("rule_"))
        rule_of[log.stem] = rule_dir.removeprefix("rule_")
    return rule_of


def job_records(workdir: str | Path, lines: Iterable[str]) -> dict[str, list[dict[str, str]]]:
    """The records among ``lines`` of the jobs the run in ``workdir`` submitted, as field dicts, by rule.

    A record belongs to the run when its ``WorkDir`` is ``workdir`` and its ``JobId`` has a log in the run's
    plugin log folder (another run in the same folder, or a job of another tool, is left out).
    """
    rule_of = rules_of_jobs(workdir)
    records: dict[str, list[dict[str, str]]] = {}
    for line in lines:
        rec = dict(_FIELD.findall(line))
        if rec.get("WorkDir") == str(workdir) and rec.get("JobId") in rule_of:
            records.setdefault(rule_of[rec["JobId"]], []).append(rec)
    return records
