"""Run the Python examples of every docs page, in order, as one module per page."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def python_blocks(page: Path) -> list[str]:
    return _BLOCK.findall(page.read_text(encoding="utf-8"))


PAGES = sorted(p for p in DOCS.glob("*.md") if python_blocks(p))


def test_pages_with_examples_exist() -> None:
    assert {p.name for p in PAGES} >= {
        "attachments.md",
        "converters.md",
        "testing.md",
        "widgets.md",
    }


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_examples_run(page: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"_docs_{page.stem}"
    module = types.ModuleType(name)
    module.__file__ = str(page)
    monkeypatch.setitem(sys.modules, name, module)
    code = "\n\n".join(python_blocks(page))
    exec(compile(code, str(page), "exec"), module.__dict__)
