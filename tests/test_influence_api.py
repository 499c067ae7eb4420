"""unpoison.influence's lazy names (PEP 562): the three lists a reader and a type checker see must agree."""

import ast
import importlib
from pathlib import Path

import unpoison.influence as influence

INIT = Path(influence.__file__)


def _type_checking_imports() -> dict[str, str]:
    """name → submodule of every import under ``if TYPE_CHECKING:`` in the package's __init__."""
    found: dict[str, str] = {}
    for node in ast.walk(ast.parse(INIT.read_text())):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for imp in node.body:
                assert isinstance(imp, ast.ImportFrom), ast.dump(imp)
                found.update({alias.name: imp.module.removeprefix("unpoison.influence.") for alias in imp.names})
    return found


def test_lazy_names_all_and_type_checking_imports_agree():
    assert sorted(influence.__all__) == sorted(influence._MODULES)
    assert _type_checking_imports() == influence._MODULES


def test_every_lazy_name_resolves_to_its_modules_object():
    for name, module in influence._MODULES.items():
        assert getattr(influence, name) is getattr(importlib.import_module(f"unpoison.influence.{module}"), name)
