"""Import helper for optional dependencies: a missing one raises `MissingDependencyError`."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType
from typing import Any

from .errors import MissingDependencyError


def require(module: str, extra: str, what: str | None = None) -> ModuleType:
    """Import `module`, or raise MissingDependencyError naming the pip extra that provides it.

    `what` names the feature that needs it in the message (default: "this part of chatkit-kit").
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(module, extra, what) from exc


def is_installed(module: str) -> bool:
    """Whether `module` can be imported (imports it)."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def lazy_exports(package: str, table: dict[str, tuple[str, str]]) -> Callable[[str], Any]:
    """A module `__getattr__` importing `name` from `package.<module>` on first use.

    `table` maps each lazily exported name to (submodule, pip extra); a missing optional
    dependency raises MissingDependencyError naming the extra.
    """

    def __getattr__(name: str) -> Any:
        if name not in table:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module_name, extra = table[name]
        try:
            module = importlib.import_module(f"{package}.{module_name}")
        except MissingDependencyError as exc:
            raise MissingDependencyError(exc.module, extra, f"{package}.{name}") from exc
        except ImportError as exc:
            missing = exc.name or module_name
            raise MissingDependencyError(missing, extra, f"{package}.{name}") from exc
        return getattr(module, name)

    return __getattr__
