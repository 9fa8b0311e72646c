"""Answer ChatKit turns with openai-agents: `agent_turn` and unique item ids.

See docs/agents.md.
"""

from __future__ import annotations

from .images import AttachmentImageConverter
from .item_ids import FAKE_RESPONSES_ID, unique_item_ids
from .turn import (
    INPUT_GUARDRAIL_MESSAGE,
    OUTPUT_GUARDRAIL_MESSAGE,
    GuardrailTripwire,
    HistoryWindow,
    agent_turn,
)

__all__ = [
    "FAKE_RESPONSES_ID",
    "INPUT_GUARDRAIL_MESSAGE",
    "OUTPUT_GUARDRAIL_MESSAGE",
    "AttachmentImageConverter",
    "GuardrailTripwire",
    "HistoryWindow",
    "agent_turn",
    "unique_item_ids",
]
