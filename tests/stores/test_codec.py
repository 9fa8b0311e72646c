"""The JSON codec: single and batch decoding agree on every item type."""

from __future__ import annotations

from datetime import datetime

from chatkit.types import HiddenContextItem, ThreadItem, ThreadMetadata
from hypothesis import given, settings
from hypothesis import strategies as st

from chatkit_kit.stores import _codec
from chatkit_kit.testing import strategies


@settings(max_examples=60, deadline=None)
@given(st.lists(strategies.thread_items(), max_size=6))
def test_batch_decoding_equals_item_by_item(items: list[ThreadItem]) -> None:
    payloads = [_codec.encode_item(item) for item in items]
    assert _codec.decode_items(payloads) == items
    assert [_codec.decode_item(p) for p in payloads] == items


@settings(max_examples=30, deadline=None)
@given(st.lists(strategies.thread_metadata(), max_size=6))
def test_batch_thread_decoding(threads: list[ThreadMetadata]) -> None:
    assert _codec.decode_threads([_codec.encode_thread(t) for t in threads]) == threads


def test_content_that_looks_like_a_widget_still_decodes() -> None:
    item = HiddenContextItem(
        id="h", thread_id="t", created_at=datetime(2026, 1, 1), content={"type": "widget"}
    )
    payload = _codec.encode_item(item)
    assert '"type":"widget"' in payload
    assert _codec.decode_items([payload, payload.encode()]) == [item, item]
