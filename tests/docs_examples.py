"""Code the docs show, read from the docs themselves so that a test runs exactly what a reader copies."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def plugin_example() -> tuple[str, str]:
    """(module text, registered name) of the detector example of docs/architecture.md."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    block = re.search(r"```python\n(# my_detectors\.py.*?)```", text, flags=re.S)
    assert block, "docs/architecture.md lost its `# my_detectors.py` example"
    name = re.search(r'@register_detector\("(\w+)"\)', block.group(1))
    return block.group(1), name.group(1)
