"""Every install command in README.md, docs/ and examples/ takes the README's one form and works.

chatkit-kit is not on a package index: the README installs it from a clone with
`python3 -m pip install ".[extra]"`. The docs pages and the examples must say the same (a
`pip install "chatkit-kit[...]"` fails with "No matching distribution"), and name extras that
exist.
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", ROOT / "examples" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
EXTRAS = set(metadata.metadata("chatkit-kit").get_all("Provides-Extra") or [])
PLACEHOLDERS = {"extra", "..."}
"""What the pages that explain the form write in place of real extras."""
_COMMAND = re.compile(r"(?:python3 -m )?pip install[^`\n]*")
_PROJECT = re.compile(r'^(?:\.|"\.\[([a-z0-9,.-]+)\]")$')


def readme_form() -> str:
    """The command prefix of the README's Install section (its first install line)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Install\n", 1)[1]
    first = _COMMAND.search(section)
    assert first is not None
    return first.group(0).split(" .", 1)[0].split(' ".', 1)[0]


def install_commands(page: Path) -> list[str]:
    text = page.read_text(encoding="utf-8")
    return [
        match.group(0).split("#", 1)[0].split("&&", 1)[0].strip()
        for match in _COMMAND.finditer(text)
    ]


def test_the_readme_installs_from_a_clone() -> None:
    assert readme_form() == "python3 -m pip install"
    assert "not published on a package index" in (ROOT / "README.md").read_text()


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_install_lines_use_the_readme_form(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    assert "chatkit-kit[" not in text, "an index install line: use the README's form"
    form = readme_form()
    for command in install_commands(page):
        assert command.startswith(f"{form} "), f"{page.name}: {command!r} is not {form!r} ..."
        first, *others = command.removeprefix(f"{form} ").split()
        if first == "nox":  # the README's test command installs only nox
            assert not others, command
            continue
        project = _PROJECT.match(first)
        assert project is not None, f"{page.name}: {command!r} does not install the clone"
        extras = set(filter(None, (project.group(1) or "").split(",")))
        assert extras <= EXTRAS | PLACEHOLDERS, f"{page.name}: {command!r} names unknown extras"


def test_the_extras_are_read() -> None:
    assert {"sqlalchemy", "mysql", "server", "testing", "demo"} <= EXTRAS


def test_every_page_with_an_install_line_is_checked() -> None:
    checked = {page.name for page in PAGES if install_commands(page)}
    assert checked >= {"README.md", "index.md", "asgi.md", "attachments.md", "testing.md"}
    assert sum(len(install_commands(page)) for page in PAGES) >= 15
