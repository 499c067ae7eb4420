"""The docs cannot go stale silently.

- Every relative link in README.md and docs/**/*.md resolves: the file exists and, for `#anchor`, the heading does.
- Every `snakemake` command shown in a ```bash block plans (a dry run of the real Snakefile). Commands are planned
  in-process through Snakemake's Python API (~0.1-5 s each, as tests/test_validation.py does), with their
  --configfile/--config/targets; one command per `--profile` also runs as a `snakemake -n` subprocess, since a
  profile is read only by the command line. Commands with the same configuration are planned once. A command
  whose config reads a data file that is not on this machine is skipped, saying which file (CI has the one the
  docs use, ../shared/data/cifar10_10k.npz beside the repository).
- docs/configuration.md is what `python -m unpoison.config_docs` generates, and names every config key.
- docs/methods.md describes every registered attack, detector and unlearner.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from docs_examples import plugin_example

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
# Pages other branches add (the audit and cluster guides); a link to them is not checked until they exist.
WRITTEN_ELSEWHERE: set[Path] = set()  # pages another change adds (a link to them is pending, not broken)


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def prose(text: str) -> str:
    """The text without fenced code blocks and inline code (links inside code are not links)."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: links reduced to their text, lower case, punctuation dropped, spaces → '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading anchor of a page (a repeated heading gets -1, -2, ... as on GitHub)."""
    seen: dict[str, int] = {}
    out = set()
    for heading in re.findall(
        r"^#{1,6} +(.+?) *#*$", re.sub(r"^```.*?^```", "", page.read_text(), flags=re.S | re.M), flags=re.M
    ):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def links(page: Path) -> list[str]:
    """The relative link targets of a page (web and mail links left out)."""
    found = re.findall(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", prose(page.read_text()))
    return [t for t in found if not re.match(r"^[a-z][a-z0-9+.-]*:", t)]


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_every_relative_link_resolves(page):
    broken, pending = [], []
    for target in links(page):
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            (pending if dest in WRITTEN_ELSEWHERE else broken).append(f"{target} (no file {dest})")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target} (no heading #{anchor} in {rel(dest)})")
    assert not broken, f"{rel(page)}: broken links:\n" + "\n".join(broken)
    if pending:
        pytest.skip(f"{rel(page)} links to pages another branch adds: {pending}")


def test_the_link_checker_finds_headings_and_broken_links(tmp_path):
    page = tmp_path / "a.md"
    page.write_text(
        "# Results of the `default` run (2026)\n## Δ-Influence: 1/5/10 points\n## Again\n## Again\n"
        "[ok](#results-of-the-default-run-2026) [ok](#δ-influence-1510-points) [ok](#again-1) "
        "[missing](b.md) [web](https://example.org) `[code](c.md)`\n"
    )
    assert anchors(page) == {"results-of-the-default-run-2026", "δ-influence-1510-points", "again", "again-1"}
    assert links(page) == ["#results-of-the-default-run-2026", "#δ-influence-1510-points", "#again-1", "b.md"]


# ---- snakemake commands in ```bash blocks ------------------------------------------------------------------------

ONE_VALUE = {
    "--cores",
    "-c",
    "--jobs",
    "-j",
    "--report",
    "--profile",
    "--slurm-status-command",
    "--slurm-init-seconds-before-status-checks",
    "--directory",
    "-d",
}
MANY_VALUES = {
    "--configfile": "configfiles",
    "--configfiles": "configfiles",
    "--config": "config",
    "-C": "config",
    "--resources": "other",
    "--set-resources": "other",
    "--default-resources": "other",
}


def shell_commands(block: str) -> list[list[str]]:
    """The commands of a bash block as token lists (continuations joined, comments dropped, split at && ; |)."""
    out = []
    for line in block.replace("\\\n", " ").splitlines():
        tokens = shlex.split(line, comments=True)
        command: list[str] = []
        for tok in tokens + ["&&"]:
            if tok in ("&&", ";", "|", "||"):
                if command:
                    out.append(command)
                command = []
            else:
                command.append(tok)
    return out


def parse_snakemake(tokens: list[str]) -> dict | None:
    """A `snakemake` command's env, configfiles, config entries, targets and profile (None: not snakemake)."""
    env = {}
    while tokens and re.match(r"^[A-Z_][A-Z0-9_]*=", tokens[0]):
        key, _, value = tokens.pop(0).partition("=")
        env[key] = value
    if not tokens or tokens[0] != "snakemake":
        return None
    spec: dict = {"env": env, "configfiles": [], "config": [], "targets": [], "profile": None, "other": []}
    key = None
    for tok in tokens[1:]:
        if tok.startswith("-"):
            key = MANY_VALUES.get(tok) or ("one:" + tok if tok in ONE_VALUE else None)
            spec["other"].append(tok)
        elif key and key.startswith("one:"):
            if key == "one:--profile":
                spec["profile"] = tok
            key = None
        elif key:
            spec[key].append(tok)
        else:
            spec["targets"].append(tok)
    return spec


def documented_commands() -> dict[tuple, tuple[str, dict]]:
    """Distinct (configfiles, config, targets, plugins-from-env) → (first place shown, parsed command)."""
    found: dict[tuple, tuple[str, dict]] = {}
    for page in PAGES:
        text = page.read_text()
        for match in re.finditer(r"^```bash\n(.*?)^```", text, flags=re.S | re.M):
            line = text[: match.start()].count("\n") + 1
            for tokens in shell_commands(match.group(1)):
                spec = parse_snakemake(tokens)
                if spec is not None:
                    key = (tuple(spec["configfiles"]), tuple(spec["config"]), tuple(spec["targets"]))
                    found.setdefault(key, (f"{rel(page)}:{line}", spec))
    return found


COMMANDS = documented_commands()


def missing_data(configfiles: list[str]) -> list[str]:
    """Relative data files (`path:` of npz sources) that the configs read and this checkout lacks."""
    missing = []
    for name in configfiles:
        config = yaml.safe_load((ROOT / name).read_text()) or {}
        for entry in (config.get("dataset_settings") or {}).values():
            path = (entry or {}).get("path")
            if path and not Path(path).is_absolute() and not (ROOT / path).exists():
                missing.append(path)
    return missing


def plan(spec: dict) -> None:
    """Dry-run the command's configuration in-process (working directory: the repository, as a user runs it)."""
    from snakemake.api import SnakemakeApi
    from snakemake.cli import parse_config
    from snakemake.settings.enums import Quietness
    from snakemake.settings.types import (
        ConfigSettings,
        DAGSettings,
        OutputSettings,
        ResourceSettings,
        StorageSettings,
    )

    with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
        workflow = api.workflow(
            resource_settings=ResourceSettings(cores=1),
            config_settings=ConfigSettings(
                configfiles=[ROOT / f for f in spec["configfiles"]], config=parse_config(spec["config"])
            ),
            storage_settings=StorageSettings(),
            workdir=ROOT,
            snakefile=ROOT / "Snakefile",
        )
        workflow.dag(DAGSettings(targets=spec["targets"])).execute_workflow(executor="dryrun")


@pytest.fixture
def plugin_on_path(tmp_path, monkeypatch):
    """The docs' plugin detector module (docs/architecture.md) importable, and unregistered afterwards."""
    from unpoison.detectors import DETECTORS

    text, name = plugin_example()
    (tmp_path / "my_detectors.py").write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("UNPOISON_PLUGINS", "")
    yield
    DETECTORS.pop(name, None)
    sys.modules.pop("my_detectors", None)


@pytest.mark.parametrize("key", list(COMMANDS), ids=[where for where, _ in COMMANDS.values()])
def test_every_documented_snakemake_command_plans(key, plugin_on_path):
    where, spec = COMMANDS[key]
    missing = missing_data(spec["configfiles"])
    if missing:
        pytest.skip(f"{where} reads {missing}, not on this machine")
    plan(spec)


def test_the_docs_show_the_commands_that_matter():
    shown = {" ".join(k[0]) for k in COMMANDS}
    assert "" in shown, "the default run (`snakemake --cores all`) is not shown in a ```bash block"
    assert any("experiments/digits-paper.yaml" in s for s in shown)
    assert any(spec["profile"] for _, spec in COMMANDS.values()), "no `--profile` command is shown"


def test_a_documented_profile_command_plans_on_the_command_line():
    """`snakemake -n` with the first documented `--profile` command (a subprocess: ~10 s)."""
    where, spec = next((w, s) for w, s in COMMANDS.values() if s["profile"])
    args = [
        "--profile",
        spec["profile"],
        *(["--configfile", *spec["configfiles"]] if spec["configfiles"] else []),
        *(["--config", *spec["config"]] if spec["config"] else []),
    ]
    env = {**os.environ, **spec["env"], "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--quiet", "all", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"{where}: snakemake -n {' '.join(args)} failed:\n{done.stderr[-3000:]}"


def test_the_command_parser_reads_what_the_docs_write():
    block = (
        "SBATCH_PARTITION=gpu snakemake --profile profiles/slurm --configfile a.yaml b.yaml \\\n"
        "  --config 'seeds=[7]' x=1 --cores all results/t.csv  # comment\npip install -e . && snakemake -n\n"
    )
    specs = [parse_snakemake(t) for t in shell_commands(block)]
    assert specs[1] is None and specs[2]["configfiles"] == []
    assert specs[0]["env"] == {"SBATCH_PARTITION": "gpu"} and specs[0]["profile"] == "profiles/slurm"
    assert specs[0]["configfiles"] == ["a.yaml", "b.yaml"] and specs[0]["config"] == ["seeds=[7]", "x=1"]
    assert specs[0]["targets"] == ["results/t.csv"]


# ---- generated and checked pages ------------------------------------------------------------------------------


def test_the_configuration_page_is_generated_from_the_schema_and_the_methods():
    from unpoison import config_docs

    expected = config_docs.render()
    assert (ROOT / "docs" / "configuration.md").read_text() == expected, (
        "docs/configuration.md is stale: run python -m unpoison.config_docs --write"
    )
    schema = yaml.safe_load((ROOT / "schemas" / "config.schema.yaml").read_text())
    for key in schema["properties"]:
        assert f"`{key}" in expected, key


def test_a_method_without_documented_settings_is_refused():
    from unpoison import config_docs

    def undocumented(width: int = 3) -> None:
        """No Args section."""

    with pytest.raises(config_docs.MissingMeaning, match="width"):
        config_docs.method_keys(undocumented, "model", None)


def test_the_methods_page_describes_every_registered_method():
    from unpoison.attacks import ATTACKS
    from unpoison.detectors import DETECTORS
    from unpoison.unlearners import UNLEARNERS

    text = (ROOT / "docs" / "methods.md").read_text()
    missing = [name for reg in (ATTACKS, DETECTORS, UNLEARNERS) for name in reg if f"`{name}`" not in text]
    assert not missing, f"docs/methods.md does not describe {missing}"
