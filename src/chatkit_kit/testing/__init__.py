"""Test kit: store conformance suites and strategies, scripted models and a ChatKit client.

Needs the `testing` extra: pip install "chatkit-kit[testing]". Names are imported on first use,
so `chatkit_kit.testing._cli` and the pytest plugin load without hypothesis; the app test kit
(`ScriptedOpenAI`, `ChatKitTestClient`, `requests`) needs no hypothesis, the client needs
httpx. Works in a project that turns warnings into errors (`filterwarnings = error`):
upstream's widget DeprecationWarning is silenced where the suite imports, builds or loads
widgets, and nowhere else.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._quiet import import_chatkit_quietly

import_chatkit_quietly()

__all__ = [
    "RULES",
    "APIFailure",
    "AttachmentIndexConformance",
    "Capabilities",
    "ChatKitHTTPError",
    "ChatKitTestClient",
    "ConformanceContext",
    "ConformanceFailure",
    "ConformanceReport",
    "GeneratedImage",
    "NotSupported",
    "RetentionConformance",
    "Rule",
    "RuleResult",
    "ScriptStep",
    "ScriptedOpenAI",
    "StoreConformance",
    "StreamedTurn",
    "StrictStoreConformance",
    "Text",
    "ToolCall",
    "parse_sse",
    "requests",
    "run_conformance",
    "strategies",
]

_APP_KIT = {
    "APIFailure": ".models",
    "GeneratedImage": ".models",
    "ScriptStep": ".models",
    "ScriptedOpenAI": ".models",
    "Text": ".models",
    "ToolCall": ".models",
    "ChatKitHTTPError": ".client",
    "ChatKitTestClient": ".client",
    "StreamedTurn": ".client",
    "parse_sse": ".client",
}
"""Names of the app test kit: no hypothesis needed."""

_HOMES = (
    {name: ".conformance" for name in __all__} | {"RetentionConformance": ".retention"} | _APP_KIT
)

if TYPE_CHECKING:
    from . import requests, strategies
    from .client import ChatKitHTTPError, ChatKitTestClient, StreamedTurn, parse_sse
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
    from .models import APIFailure, GeneratedImage, ScriptedOpenAI, ScriptStep, Text, ToolCall
    from .retention import RetentionConformance


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name == "requests":
        return importlib.import_module(".requests", __name__)
    if name in _APP_KIT:
        return getattr(importlib.import_module(_APP_KIT[name], __name__), name)
    from .._optional import require

    require("hypothesis", "testing")
    if name == "strategies":
        return importlib.import_module(".strategies", __name__)
    return getattr(importlib.import_module(_HOMES[name], __name__), name)
