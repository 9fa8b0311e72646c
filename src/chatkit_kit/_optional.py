"""Import helper for optional dependencies."""

from __future__ import annotations

import importlib
from types import ModuleType


def require(module: str, extra: str) -> ModuleType:
    """Import `module`, or raise an ImportError naming the pip extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - exercised in a venv without the extra
        raise ImportError(
            f"{module!r} is required for this part of chatkit-kit but is not installed; "
            f'install it with: pip install "chatkit-kit[{extra}]"'
        ) from exc
