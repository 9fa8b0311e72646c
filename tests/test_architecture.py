"""Dependencies run one way: attachments -> stores, through the stores' public API only."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "chatkit_kit"


def imported_modules(path: Path) -> set[str]:
    """Absolute names of every module `path` imports (relative imports resolved)."""
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def modules(subpackage: str) -> list[Path]:
    return sorted((PACKAGE / subpackage).rglob("*.py"))


@pytest.mark.parametrize("path", modules("stores"), ids=lambda p: p.name)
def test_no_store_module_imports_the_attachments_package(path: Path) -> None:
    imports = imported_modules(path)
    assert not {m for m in imports if m.startswith("chatkit_kit.attachments")}
    assert "contextvars" not in imports


@pytest.mark.parametrize("path", modules("attachments"), ids=lambda p: p.name)
def test_attachments_use_only_the_public_store_api(path: Path) -> None:
    imports = imported_modules(path)
    private = {m for m in imports if m.startswith("chatkit_kit.stores.")}
    # `from ..stores import X` shows up as chatkit_kit.stores.X: allowed when X is public.
    assert {m for m in private if m.rsplit(".", 1)[1].startswith("_")} == set()
    assert {m for m in private if m.count(".") > 2} == set()
    assert "contextvars" not in imports


def test_the_checker_sees_relative_imports() -> None:
    imports = imported_modules(PACKAGE / "attachments" / "_backend.py")
    assert "chatkit_kit.stores" in imports
    assert "chatkit_kit.attachments._compose" in imports
