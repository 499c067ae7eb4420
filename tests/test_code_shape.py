"""The shape the project holds itself to: small files, short functions, no import cycle, one name per step."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "unpoison").rglob("*.py")) + sorted((ROOT / "workflow_scripts").glob("*.py"))
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 60


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_source_file_is_over_400_lines(path):
    assert len(path.read_text().splitlines()) <= MAX_FILE_LINES


def test_no_function_is_over_60_lines():
    long = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length} lines)")
    assert not long, "split these functions:\n" + "\n".join(long)


def imports_of(path: Path, package: str) -> set[str]:
    """The project modules a file imports, at any depth of the file (lazy imports count too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(package):
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith(package)}
    return found


def test_the_library_has_no_import_cycle():
    files = sorted((ROOT / "unpoison").rglob("*.py"))
    modules = {module_name(p): p for p in files}
    graph = {m: {i for i in imports_of(p, "unpoison") if i in modules and i != m} for m, p in modules.items()}
    for m in list(graph):  # a package's __init__ re-exports its modules: an edge to the package is not a cycle
        graph[m] = {i for i in graph[m] if not m.startswith(i + ".")}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_every_rule_script_and_stage_function_carry_the_rule_name():
    """rules/X.smk rule `r` → workflow_scripts/r.py → unpoison.stages.X.r, called through run_step."""
    rules = {}
    for smk in sorted((ROOT / "rules").glob("*.smk")):
        for name, script in re.findall(
            r"^rule (\w+):.*?script:\s*\n\s*\"\.\./workflow_scripts/(\w+)\.py\"", smk.read_text(), flags=re.S | re.M
        ):
            rules[name] = (smk.stem, script)
    assert len(rules) >= 20
    for rule, (stage_module, script) in rules.items():
        assert script == rule, f"rule {rule} runs workflow_scripts/{script}.py"
        text = (ROOT / "workflow_scripts" / f"{script}.py").read_text()
        assert (
            f"from unpoison.stages.{stage_module} import {rule}\n" in text and f"run_step(snakemake, {rule})" in text
        ), rule


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["lint", "format"])
def test_ruff_passes(command):
    """ruff (settings in pyproject.toml) on the whole repository: `ruff check --fix . && ruff format .` fixes most."""
    done = subprocess.run([sys.executable, "-m", "ruff", *command, str(ROOT)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
