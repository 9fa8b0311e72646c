"""Test kit for ChatKit stores: the `StoreConformance` suite and hypothesis strategies.

Needs the `testing` extra: pip install "chatkit-kit[testing]".
"""

from __future__ import annotations

from .._optional import require

require("hypothesis", "testing")

from . import strategies  # noqa: E402
from .conformance import (  # noqa: E402
    RULES,
    ConformanceContext,
    ConformanceFailure,
    ConformanceReport,
    StoreConformance,
    run_conformance,
)
from .retention import RetentionConformance  # noqa: E402

__all__ = [
    "RULES",
    "ConformanceContext",
    "ConformanceFailure",
    "ConformanceReport",
    "RetentionConformance",
    "StoreConformance",
    "run_conformance",
    "strategies",
]
