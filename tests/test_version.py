"""The version is written once, in `chatkit_kit.__version__`; packaging reads it from there."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import chatkit_kit

ROOT = Path(__file__).resolve().parent.parent


def project_table() -> str:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    match = re.search(r"^\[project\]\n(.*?)(?=^\[)", text, re.MULTILINE | re.DOTALL)
    assert match is not None
    return match.group(1)


def test_pyproject_takes_the_version_from_the_package() -> None:
    table = project_table()
    assert re.search(r"^version\s*=", table, re.MULTILINE) is None
    assert re.search(r'^dynamic\s*=\s*\[[^\]]*"version"', table, re.MULTILINE)
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert '[tool.hatch.version]\npath = "src/chatkit_kit/__init__.py"' in text


def test_installed_metadata_matches_the_package() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+([a-z]+\d+)?", chatkit_kit.__version__)
    assert importlib.metadata.version("chatkit-kit") == chatkit_kit.__version__
