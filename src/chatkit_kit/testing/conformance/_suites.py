"""The test classes users subclass: the contract tier, and contract plus strict."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ._contract import ContractRules
from ._harness import RULES, Rule, rule_of
from ._reopen import ReopenRules
from ._strict import StrictRules


class StoreConformance(ContractRules, ReopenRules):
    """The ChatKit store contract as tests. Subclass it and define `make_store`.

    - `make_store()` (sync or async) returns a store; called once per test method, inside that
      test's event loop.
    - `teardown_store(store)` (sync or async, optional) releases it.
    - `make_context(user_id)` (optional) builds the request context for an owner; the default
      is `ConformanceContext(user_id)`. Different `user_id`s must map to different owners.
    - `supports_attachments`: None (default) detects it (NotImplementedError from
      save_attachment means no); True/False declares it. Without attachments the attachment
      rules are skipped as not supported.
    - `reopen(store)` (sync or async, optional) returns a new store on the same location
      (database, file) as `store`; with it, the reopen rules check that everything written
      reads back after a restart and that closing releases every connection.
    - `items_written_elsewhere` (default False): True for a projection store whose items
      another component writes (add_thread_item/save_item store nothing); the rules that
      write items are then reported not supported.
    - `loop_cpu_threshold_ms` (default 10) and `loop_block_threshold_ms` (default 1, used only
      where the platform has no scheduler statistics): see the `does-not-block-loop` rule.
    - `conformance_profile` is "ci" (default) or "deep"; the environment variable
      CHATKIT_KIT_CONFORMANCE_PROFILE overrides it.
    """


class StrictStoreConformance(StoreConformance, StrictRules):
    """The contract tier plus chatkit-kit's own policies (the strict tier)."""


def suite_rules(suite: type[Any]) -> Iterator[tuple[str, Rule]]:
    """(method name, rule) for every rule test of a suite class, in RULES order."""
    found = {}
    for name in dir(suite):
        info = rule_of(getattr(suite, name, None))
        if info is not None:
            found[info.name] = name
    for rule_name, info in RULES.items():
        if rule_name in found:
            yield found[rule_name], info
