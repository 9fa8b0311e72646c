"""Import helper for optional dependencies."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType
from typing import Any


def require(module: str, extra: str) -> ModuleType:
    """Import `module`, or raise an ImportError naming the pip extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - exercised in a venv without the extra
        raise ImportError(
            f"{module!r} is required for this part of chatkit-kit but is not installed; "
            f'install it with: pip install "chatkit-kit[{extra}]"'
        ) from exc


def lazy_exports(package: str, table: dict[str, tuple[str, str]]) -> Callable[[str], Any]:
    """A module `__getattr__` importing `name` from `package.<module>` on first use.

    `table` maps each lazily exported name to (submodule, pip extra); a missing optional
    dependency raises an ImportError naming the extra.
    """

    def __getattr__(name: str) -> Any:
        if name not in table:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module_name, extra = table[name]
        try:
            module = importlib.import_module(f"{package}.{module_name}")
        except ImportError as exc:
            raise ImportError(
                f"{package}.{name} needs an optional dependency: "
                f'pip install "chatkit-kit[{extra}]" ({exc})'
            ) from exc
        return getattr(module, name)

    return __getattr__
