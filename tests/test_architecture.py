"""The import structure: dependencies run one way (attachments -> stores, through the stores'
public API only), no subpackage imports another one's private modules or names, and no module
outside `stores/sql/dialects/` asks which database it runs on."""

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
    # No behaviour switched by a context variable (the attachment presenter once was): a store
    # module defines none. (`_eager` copies a task's context as asyncio does, and sets none.)
    assert "contextvars.ContextVar" not in imports
    assert "ContextVar" not in names_used(path)


def names_used(path: Path) -> set[str]:
    """Every bare name and attribute name `path` refers to."""
    used: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Name):
            used.add(node.id)
        elif isinstance(node, ast.Attribute):
            used.add(node.attr)
    return used


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


# Dialects: what differs between databases lives in stores/sql/dialects/, nowhere else.

DIALECTS = PACKAGE / "stores" / "sql" / "dialects"
DIALECT_NAMES = frozenset({"postgresql", "postgres", "mysql", "mariadb", "sqlite"})


def _strings(node: ast.expr) -> set[str]:
    """The string constants `node` is or holds (a tuple, list or set of them)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return {s for element in node.elts for s in _strings(element)}
    return set()


def dialect_checks(source: str) -> list[str]:
    """Comparisons with a dialect name, `.startswith("mysql")`-style tests, `.dialect.name` and
    `_mysql`-style attributes."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            names = set().union(*(_strings(o) for o in operands)) & DIALECT_NAMES
            if names:
                found.append(f"line {node.lineno}: compares with {sorted(names)}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("startswith", "endswith", "partition", "find", "index")
        ):
            names = set().union(*(_strings(a) for a in node.args)) & DIALECT_NAMES
            if names:
                found.append(f"line {node.lineno}: .{node.func.attr}({sorted(names)})")
        elif isinstance(node, ast.Attribute):
            if (
                node.attr == "name"
                and isinstance(node.value, ast.Attribute)
                and node.value.attr == "dialect"
            ):
                found.append(f"line {node.lineno}: .dialect.name")
            if node.attr.lstrip("_") in DIALECT_NAMES and node.attr.startswith("_"):
                found.append(f"line {node.lineno}: .{node.attr}")
    return sorted(found, key=lambda f: int(f.split(":")[0].removeprefix("line ")))


def outside_dialects() -> list[Path]:
    return [p for p in sorted(PACKAGE.rglob("*.py")) if DIALECTS not in p.parents]


@pytest.mark.parametrize("path", outside_dialects(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_dialect_name_checks_outside_the_dialects(path: Path) -> None:
    assert dialect_checks(path.read_text(encoding="utf-8")) == []


def test_the_dialect_check_finds_each_kind_of_check() -> None:
    source = (
        'if names.dialect == "mysql": pass\n'
        'if engine.dialect.name in ("postgresql", "sqlite"): pass\n'
        "if self._mysql: pass\n"
        'ok = driver in ("", "asyncpg")\n'
        'head = "x" if scheme.lower().startswith("mariadb") else "y"\n'
    )
    assert [f.split(":")[0] for f in dialect_checks(source)] == [
        "line 1",
        "line 2",
        "line 2",
        "line 3",
        "line 5",
    ]


# Packages: a subpackage uses another one's public names only. The root package's own private
# modules (chatkit_kit._optional, ._http, ...) are shared by every subpackage.


def _subpackage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 else ""


def cross_package_private_imports(path: Path) -> set[str]:
    own = _subpackage(".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts))
    found = set()
    for module in imported_modules(path):
        parts = module.split(".")
        if parts[0] != "chatkit_kit" or len(parts) < 3 or parts[1] == own:
            continue
        if not (PACKAGE / parts[1]).is_dir():  # a module of the root package
            continue
        if any(p.startswith("_") and not p.startswith("__") for p in parts[1:]):
            found.add(module)
    return found


@pytest.mark.parametrize(
    "path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_no_cross_package_private_imports(path: Path) -> None:
    assert cross_package_private_imports(path) == set()


def test_the_import_check_sees_a_private_import_across_packages(tmp_path: Path) -> None:
    converters = PACKAGE / "converters" / "attachments.py"
    assert "chatkit_kit.attachments.AttachmentContentSource" in imported_modules(converters)
    assert cross_package_private_imports(converters) == set()
    # Its own package's private modules are fine; another package's are not.
    own = PACKAGE / "stores" / "sqlalchemy.py"
    assert "chatkit_kit.stores._sqlstore" in imported_modules(own)
    assert cross_package_private_imports(own) == set()
    assert cross_package_private_imports(PACKAGE / "cli" / "_main.py") == set()
