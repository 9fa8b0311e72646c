"""`StoreConformance`: the ChatKit store contract as a pytest test class.

Subclass it in a test module, say how to build a store, and pytest runs every rule against it::

    from chatkit_kit.testing import StoreConformance

    class TestMyStore(StoreConformance):
        async def make_store(self):
            return MyStore(...)

Each test method runs on its own event loop (no pytest-asyncio needed) and builds one store with
`make_store`; every hypothesis example then works with fresh owners (new user ids), so the store
never has to be emptied between examples. A failure names the rule that broke.

Modules: `_harness` (running a rule, the `@rule` decorator, failure attribution),
`_capabilities`, `_contract` (the default tier), `_strict` (chatkit-kit's policies),
`_stateful` (the state machine), `_suites` (the classes users subclass), `_report`
(`run_conformance` and its report), `_attachment_index` (`AttachmentIndexConformance`).
"""

from __future__ import annotations

from ._attachment_index import AttachmentIndexConformance
from ._capabilities import Capabilities
from ._harness import (
    PROFILE_ENV,
    PROFILES,
    RULES,
    ConformanceContext,
    ConformanceFailure,
    NotSupported,
    Rule,
)
from ._report import ConformanceReport, RuleResult, run_conformance
from ._suites import StoreConformance, StrictStoreConformance

__all__ = [
    "PROFILES",
    "PROFILE_ENV",
    "RULES",
    "AttachmentIndexConformance",
    "Capabilities",
    "ConformanceContext",
    "ConformanceFailure",
    "ConformanceReport",
    "NotSupported",
    "Rule",
    "RuleResult",
    "StoreConformance",
    "StrictStoreConformance",
    "run_conformance",
]
