"""Test kit for ChatKit stores: the conformance suites and hypothesis strategies.

Needs the `testing` extra: pip install "chatkit-kit[testing]". Names are imported on first use,
so the `chatkit-kit conformance` command and the pytest plugin load without hypothesis. Works
in a project that turns warnings into errors (`filterwarnings = error`): upstream's widget
DeprecationWarning is silenced where the suite imports, builds or loads widgets, and nowhere
else.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._quiet import import_chatkit_quietly

import_chatkit_quietly()

__all__ = [
    "RULES",
    "AttachmentIndexConformance",
    "Capabilities",
    "ConformanceContext",
    "ConformanceFailure",
    "ConformanceReport",
    "NotSupported",
    "RetentionConformance",
    "Rule",
    "RuleResult",
    "StoreConformance",
    "StrictStoreConformance",
    "run_conformance",
    "strategies",
]

_HOMES = {name: ".conformance" for name in __all__} | {"RetentionConformance": ".retention"}

if TYPE_CHECKING:
    from . import strategies
    from .conformance import (
        RULES,
        AttachmentIndexConformance,
        Capabilities,
        ConformanceContext,
        ConformanceFailure,
        ConformanceReport,
        NotSupported,
        Rule,
        RuleResult,
        StoreConformance,
        StrictStoreConformance,
        run_conformance,
    )
    from .retention import RetentionConformance


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from .._optional import require

    require("hypothesis", "testing")
    if name == "strategies":
        return importlib.import_module(".strategies", __name__)
    return getattr(importlib.import_module(_HOMES[name], __name__), name)
