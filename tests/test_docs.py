"""Every Python block of README.md and docs/*.md runs, alone or after the block it continues.

A block runs in a fresh module of its own unless the page says, in a line of its own in italics
right before the opening fence, that it continues an earlier one: `*Continuing the example
above:*` (or `*Continuing the Starlette example above (...):*`). Then it runs in the namespace of
the block above (and of every block that one continues). Two more markers, HTML comments also
right before the fence:

- `<!-- needs: postgres -->` (or `mysql`): the block reads the test server's URL from the same
  environment variables as the service tests (`CHATKIT_KIT_TEST_POSTGRES_DSN`,
  `CHATKIT_KIT_TEST_MYSQL_URL`) and is skipped without that server, a failure under CI=true.
- `<!-- not run: <reason> -->`: the block cannot run in a test (it serves forever, or needs an
  API key); the reason must say why, and such blocks must still compile.
"""

from __future__ import annotations

import re
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from chatkit_kit.stores.sql import dialects

from .conftest import MYSQL_URL, POSTGRES_DSN, _reachable, backend_unavailable

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_FENCE = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
_MARKER = re.compile(r"<!--\s*(needs:\s*\w+|not run:\s*(.*?))\s*-->")
_CONTINUES = re.compile(r"\*Continuing the \b.*\babove\b.*:\*")
SERVICES = {"postgres": (POSTGRES_DSN, 5432), "mysql": (MYSQL_URL, 3306)}


@dataclass
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    code: str
    continues: bool = False
    needs: set[str] = field(default_factory=set)
    not_run: str | None = None

    @property
    def name(self) -> str:
        return f"{self.page.name}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """The page's ```python blocks with the markers on the lines right before each fence."""
    text = page.read_text(encoding="utf-8")
    found = []
    for match in _FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        block = Block(page, line, match.group(1))
        before = text[: match.start()].splitlines()
        while before and (not before[-1].strip() or before[-1].startswith(("<!--", "*Continuing"))):
            text_line = before.pop().strip()
            if not text_line:
                continue
            if _CONTINUES.fullmatch(text_line):
                block.continues = True
                continue
            marker = _MARKER.fullmatch(text_line)
            assert marker is not None, f"{block.name}: unknown marker {text_line!r}"
            if marker.group(1).startswith("needs"):
                block.needs.add(marker.group(1).split(":", 1)[1].strip())
            else:
                block.not_run = marker.group(2).strip()
        found.append(block)
    return found


def chains(page: Path) -> list[list[Block]]:
    """The page's blocks grouped into runs: a block and the blocks that continue it."""
    runs: list[list[Block]] = []
    for block in blocks(page):
        if block.continues:
            assert runs, f"{block.name} continues a block, but it is the page's first"
            runs[-1].append(block)
        else:
            runs.append([block])
    return runs


CHAINS = [chain for page in PAGES for chain in chains(page)]
RUNNABLE = [chain for chain in CHAINS if any(block.not_run is None for block in chain)]


def test_every_page_with_python_is_collected() -> None:
    names = {chain[0].page.name for chain in CHAINS}
    assert names >= {
        "README.md",
        "asgi.md",
        "attachments.md",
        "converters.md",
        "stores.md",
        "testing.md",
        "widgets.md",
    }
    assert sum(len(chain) for chain in CHAINS) >= 30


def test_markers_are_well_formed() -> None:
    for chain in CHAINS:
        for block in chain:
            assert block.needs <= set(SERVICES), f"{block.name}: unknown service {block.needs}"
            if block.not_run is not None:
                assert len(block.not_run) >= 10, f"{block.name}: say why it cannot run"
                compile(block.code, block.name, "exec")  # still valid Python


@pytest.mark.parametrize("chain", RUNNABLE, ids=lambda chain: chain[0].name)
def test_block_runs(chain: list[Block], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    first = chain[0]
    for service in sorted(set().union(*(block.needs for block in chain))):
        url, port = SERVICES[service]
        if not _reachable(url, default_port=port):
            backend_unavailable(f"{service} is not reachable at {url}: the example needs it")
    name = f"_docs_{first.page.stem}_{first.line}"
    module = types.ModuleType(name)
    module.__file__ = str(first.page)
    monkeypatch.setitem(sys.modules, name, module)  # dataclasses and pydantic look it up
    monkeypatch.chdir(tmp_path)  # files an example writes (chat.db, uploads/) land there
    # A page that registers a dialect (docs/stores.md, "Adding a database") keeps it to itself.
    for table in ("_BY_NAME", "_BY_BACKEND", "_BY_SCHEME"):
        monkeypatch.setattr(dialects, table, dict(getattr(dialects, table)))
    for block in chain:
        if block.not_run is None:
            # Line numbers in tracebacks point into the page.
            code = "\n" * block.line + block.code
            exec(compile(code, str(block.page), "exec"), module.__dict__)


def test_markers_are_read(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "Intro.\n\n```python\nx = 1\n```\n\n*Continuing the example above:*\n\n"
        "```python\nassert x == 1\n```\n\n<!-- needs: postgres -->\n```python\ny = 2\n```\n\n"
        "<!-- not run: serves forever on port 8000 -->\n```python\nwhile True: pass\n```\n"
    )
    first, second, third, fourth = blocks(page)
    assert (first.continues, second.continues, third.continues) == (False, True, False)
    assert third.needs == {"postgres"} and fourth.not_run == "serves forever on port 8000"
    assert [[block.code for block in chain] for chain in chains(page)] == [
        ["x = 1\n", "assert x == 1\n"],
        ["y = 2\n"],
        ["while True: pass\n"],
    ]
    page.write_text("<!-- run me maybe -->\n```python\npass\n```\n")
    with pytest.raises(AssertionError, match="unknown marker"):
        blocks(page)
