"""Provenance: which code, config and library versions produced a result.

Every metrics JSON, every artifact's ``.meta.json`` and every table's sidecar carries a ``provenance``
record: the code version (``git describe`` of the checkout the library runs from, or the installed package
version when it is not a checkout), a hash of the workflow's config, the run seed where there is one, and
the torch / kronfluence / Python versions.

The config hash is computed once by the Snakefile from the validated config (schema defaults filled) and
handed to every job through the ``UNPOISON_CONFIG_HASH`` environment variable (jobs on a cluster re-parse
the Snakefile with the same config, so they compute the same hash). Outside a workflow it is ``None``.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

CONFIG_HASH_ENV = "UNPOISON_CONFIG_HASH"
_SOURCE_DIR = Path(__file__).resolve().parent.parent


def config_hash(config: dict[str, Any]) -> str:
    """The first 12 hex digits of the SHA-256 of ``config`` as canonical JSON (sorted keys, no spaces).

    Key order and YAML formatting do not change it; any value does (including execution-only settings).
    """
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@lru_cache(maxsize=1)
def code_version() -> str:
    """``git describe --always --dirty --tags`` of the source checkout, else ``unpoison <package version>``."""
    try:
        out = subprocess.run(
            ["git", "-C", str(_SOURCE_DIR), "describe", "--always", "--dirty", "--tags"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        if out.stdout.strip() and (_SOURCE_DIR / ".git").exists():
            return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    from unpoison import __version__

    return f"unpoison {__version__}"


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def torch_version() -> str | None:
    """torch's own version string, which names the build (e.g. 2.4.1+cu121; the package metadata does not), read
    from ``torch/version.py`` without importing torch (a report job then starts without torch's ~1.5 s import)."""
    import sys
    from importlib.util import find_spec

    if "torch" in sys.modules:
        return sys.modules["torch"].__version__
    spec = find_spec("torch")
    version_file = Path(spec.origin).parent / "version.py" if spec and spec.origin else None
    if version_file is None or not version_file.exists():
        return _version("torch")
    for line in version_file.read_text().splitlines():
        if line.startswith("__version__"):
            return line.split("=", 1)[1].strip().strip("'\"")
    return _version("torch")


@lru_cache(maxsize=1)
def _library_versions() -> dict[str, str | None]:
    return {"torch": torch_version(), "kronfluence": _version("kronfluence"), "python": platform.python_version()}


def provenance(seed: int | None = None, seeds: list[int] | None = None) -> dict[str, Any]:
    """The provenance record of a result made now, in this process.

    Args:
        seed: the run seed of a per-run result.
        seeds: the seeds a table aggregates over.
    """
    record: dict[str, Any] = {"code_version": code_version(), "config_hash": os.environ.get(CONFIG_HASH_ENV)}
    if seed is not None:
        record["seed"] = int(seed)
    if seeds is not None:
        record["seeds"] = sorted(int(s) for s in seeds)
    record.update(_library_versions())
    return record


def provenance_line(record: dict[str, Any]) -> str:
    """One Markdown line stating ``record`` (for the foot of a Markdown table)."""
    seeds = record.get("seeds")
    parts = [f"code {record['code_version']}", f"config {record['config_hash']}"]
    if seeds is not None:
        parts.append("seeds " + ", ".join(map(str, seeds)))
    parts += [f"torch {record['torch']}", f"kronfluence {record['kronfluence']}"]
    return "_Provenance: " + " · ".join(parts) + "._"
