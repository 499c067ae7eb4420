"""The Snakemake command line the tests run: this checkout's Snakefile, in a scratch working directory."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def snakemake_cmd(
    workdir: str | Path, *args: str, configfiles: Iterable[str | Path] = (), dry_run: bool = False
) -> list[str]:
    """``python -m snakemake [-n] --snakefile <checkout>/Snakefile --directory <workdir> [--configfile ...] <args>``."""
    cmd = [sys.executable, "-m", "snakemake", *(["-n"] if dry_run else [])]
    cmd += ["--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir)]
    files = [str(f) for f in configfiles]
    return cmd + (["--configfile", *files] if files else []) + list(args)
