"""Load the recent history of a thread for model input, in whole turns.

A turn is a `UserMessageItem` and every item after it up to the next user message (assistant
messages, tool calls with their outputs, widgets, workflows, hidden context). Items before the
first user message of a thread form one leading turn. Cutting history anywhere else would show
the model answers without their question, or a tool result without the turn that asked for it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from chatkit.store import Store
from chatkit.types import GeneratedImageItem, ThreadItem, UserMessageItem

from ..stores import MAX_PAGE_LIMIT

ATTACHMENT_TOKEN_ESTIMATE = 1000
"""Tokens `estimate_item_tokens` counts per attachment or generated image."""


def estimate_item_tokens(item: ThreadItem) -> int:
    """Roughly how many tokens `item` costs as model input: its JSON length / 4.

    Attachments and generated images count `ATTACHMENT_TOKEN_ESTIMATE` each instead of the
    length of their metadata (which can hold multi-megabyte `data:` URLs). This is a budget
    heuristic, not a tokenizer; pass your own `estimate_tokens` to `load_history` for
    anything more precise.
    """
    if isinstance(item, GeneratedImageItem):
        return ATTACHMENT_TOKEN_ESTIMATE + (16 if item.image is not None else 0)
    if isinstance(item, UserMessageItem):
        size = len(item.model_dump_json(exclude_none=True, exclude={"attachments"}))
        return math.ceil(size / 4) + ATTACHMENT_TOKEN_ESTIMATE * len(item.attachments)
    return math.ceil(len(item.model_dump_json(exclude_none=True)) / 4)


async def load_history(
    store: Store[Any],
    thread_id: str,
    context: Any,
    *,
    max_items: int = 50,
    max_tokens: int | None = None,
    estimate_tokens: Callable[[ThreadItem], int] = estimate_item_tokens,
    page_size: int | None = None,
) -> list[ThreadItem]:
    """Return the most recent whole turns of a thread, oldest first.

    Reads newest-first pages (`load_thread_items(thread_id, after, page_size, "desc",
    context)`) and stops as soon as the next older turn would take the total over `max_items`
    items or `max_tokens` estimated tokens, so it never reads the whole thread. The newest turn
    is always returned complete, even when it alone exceeds a limit: it holds the message being
    answered. Feed the result to a converter's `to_agent_input`.
    """
    if isinstance(max_items, bool) or not isinstance(max_items, int) or max_items < 1:
        raise ValueError(f"max_items must be an int >= 1, got {max_items!r}")
    if max_tokens is not None and (
        isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1
    ):
        raise ValueError(f"max_tokens must be an int >= 1 or None, got {max_tokens!r}")
    if page_size is None:
        page_size = min(max_items + 1, 200)
    elif isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1:
        raise ValueError(f"page_size must be an int >= 1, got {page_size!r}")
    page_size = min(page_size, MAX_PAGE_LIMIT)

    kept: list[ThreadItem] = []  # newest first
    kept_tokens = 0
    turn: list[ThreadItem] = []  # the turn being read, newest first
    turn_tokens = 0

    def fits(items: int, tokens: int) -> bool:
        if not kept:
            return True  # the newest turn is always kept
        if len(kept) + items > max_items:
            return False
        return max_tokens is None or kept_tokens + tokens <= max_tokens

    after: str | None = None
    while True:
        page = await store.load_thread_items(thread_id, after, page_size, "desc", context)
        for item in page.data:
            turn.append(item)
            turn_tokens += estimate_tokens(item)
            if not fits(len(turn), turn_tokens):
                return _chronological(kept)
            if isinstance(item, UserMessageItem):
                kept.extend(turn)
                kept_tokens += turn_tokens
                turn, turn_tokens = [], 0
        if not page.has_more:
            break
        if page.after is None:
            raise RuntimeError(
                f"{type(store).__name__}.load_thread_items returned has_more=True without an "
                "`after` cursor; a store must set `after` whenever has_more is true"
            )
        after = page.after
    # Start of the thread reached: what is left is the leading turn before any user message.
    if turn and fits(len(turn), turn_tokens):
        kept.extend(turn)
    return _chronological(kept)


def _chronological(newest_first: list[ThreadItem]) -> list[ThreadItem]:
    return newest_first[::-1]
