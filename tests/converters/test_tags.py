"""TagResolverRegistry and tag conversion in user messages."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from chatkit.types import UserMessageTagContent

from chatkit_kit.converters import (
    MENTIONS_HEADER,
    AttachmentAwareConverter,
    TagResolverRegistry,
    default_tag_key,
)
from tests.fixtures.context import Ctx

from .test_attachments import CTX, message, text


def tag(
    tag_id: str, label: str, entity_type: str | None = None, group: str | None = None
) -> UserMessageTagContent:
    data: dict[str, Any] = {} if entity_type is None else {"type": entity_type}
    return UserMessageTagContent(id=tag_id, text=label, data=data, group=group)


def registry() -> TagResolverRegistry:
    tags = TagResolverRegistry()

    @tags.resolver("customer")
    async def customer(t: UserMessageTagContent, context: Ctx) -> str:
        return f"Customer {t.text} (id {t.id}), account manager of {context.user_id}"

    @tags.resolver("broken")
    async def broken(t: UserMessageTagContent, context: Any) -> str:
        raise LookupError(f"no such record {t.id}")

    return tags


def test_key_is_data_type_then_group() -> None:
    assert default_tag_key(tag("1", "a", "customer", group="People")) == "customer"
    assert default_tag_key(tag("1", "a", group="People")) == "People"
    assert default_tag_key(tag("1", "a")) is None
    assert default_tag_key(UserMessageTagContent(id="1", text="a", data={"type": 3})) is None


async def test_registered_resolver_renders_with_the_request_context() -> None:
    part = await registry().render(tag("c_1", "Acme", "customer"), CTX)
    assert part == text("Customer Acme (id c_1), account manager of alice")


async def test_unregistered_type_gets_the_default_rendering(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tags = registry()
    with caplog.at_level(logging.WARNING, logger="chatkit_kit.converters"):
        assert await tags.render(tag("p_9", "Bob", "person"), CTX) == text("Bob (person id: p_9)")
        assert await tags.render(tag("x_1", "Thing"), CTX) == text("Thing (id: x_1)")
    assert caplog.text == ""


async def test_failing_resolver_falls_back_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="chatkit_kit.converters"):
        part = await registry().render(tag("b_1", "Oops", "broken"), CTX)
    assert part == text("Oops (broken id: b_1)")
    assert "'broken'" in caplog.text and "LookupError" in caplog.text and "b_1" in caplog.text


async def test_slow_resolver_times_out_to_the_default() -> None:
    tags = TagResolverRegistry(timeout=0.01)

    async def slow(t: UserMessageTagContent, context: Any) -> str:
        await asyncio.sleep(5)
        return "never"

    tags.register("doc", slow)
    assert await tags.render(tag("d_1", "Spec", "doc"), CTX) == text("Spec (doc id: d_1)")


async def test_resolver_may_return_a_content_part_and_bad_values_fall_back() -> None:
    tags = TagResolverRegistry()

    async def image(t: UserMessageTagContent, context: Any) -> Any:
        return {"type": "input_image", "detail": "low", "image_url": "https://x.test/a.png"}

    async def wrong(t: UserMessageTagContent, context: Any) -> Any:
        return 42

    tags.register("photo", image)
    tags.register("wrong", wrong)
    assert await tags.render(tag("1", "P", "photo"), CTX) == {
        "type": "input_image",
        "detail": "low",
        "image_url": "https://x.test/a.png",
    }
    assert await tags.render(tag("2", "W", "wrong"), CTX) == text("W (wrong id: 2)")


def test_register_rules() -> None:
    tags = registry()
    assert tags.entity_types() == ["broken", "customer"]
    assert "customer" in tags
    with pytest.raises(ValueError, match="'customer' is already registered"):
        tags.register("customer", registry()._resolvers["customer"])
    with pytest.raises(ValueError, match="non-empty str"):
        tags.register("", registry()._resolvers["customer"])
    tags.unregister("customer")
    tags.unregister("customer")
    assert "customer" not in tags
    with pytest.raises(ValueError, match="timeout"):
        TagResolverRegistry(timeout=0)


async def test_custom_key_function() -> None:
    tags = TagResolverRegistry(key=lambda t: t.id.split("_", 1)[0])

    async def order(t: UserMessageTagContent, context: Any) -> str:
        return f"Order {t.id}"

    tags.register("ord", order)
    assert await tags.render(tag("ord_7", "#7"), CTX) == text("Order ord_7")


async def test_message_with_tags_and_text() -> None:
    converter = AttachmentAwareConverter(None, CTX, tags=registry())
    item = message(
        "Email ",
        tag("c_1", "Acme", "customer"),
        " and ",
        tag("b_1", "Oops", "broken"),
        " about ",
        tag("c_1", "Acme", "customer"),
    )
    out = await converter.to_agent_input([item])
    assert out == [
        {
            "role": "user",
            "type": "message",
            "content": [text("Email @Acme and @Oops about @Acme")],
        },
        {
            "role": "user",
            "type": "message",
            "content": [
                text(MENTIONS_HEADER),
                text("Customer Acme (id c_1), account manager of alice"),
                text("Oops (broken id: b_1)"),
            ],
        },
    ]


async def test_message_made_only_of_tags_is_never_dropped() -> None:
    converter = AttachmentAwareConverter(None, CTX, tags=registry())
    out = await converter.to_agent_input([message(tag("b_1", "Oops", "broken"))])
    assert out == [
        {"role": "user", "type": "message", "content": [text("@Oops")]},
        {
            "role": "user",
            "type": "message",
            "content": [text(MENTIONS_HEADER), text("Oops (broken id: b_1)")],
        },
    ]


async def test_tags_with_equal_text_but_different_ids_are_both_kept() -> None:
    converter = AttachmentAwareConverter(None, CTX)
    out = await converter.to_agent_input(
        [message(tag("p_1", "Sam", "person"), tag("p_2", "Sam", "person"))]
    )
    assert out[1]["content"][1:] == [  # type: ignore[typeddict-item,index]
        text("Sam (person id: p_1)"),
        text("Sam (person id: p_2)"),
    ]


async def test_tags_are_resolved_concurrently() -> None:
    tags = TagResolverRegistry()
    running = 0
    peak = 0

    async def slow(t: UserMessageTagContent, context: Any) -> str:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.02)
        running -= 1
        return t.id

    tags.register("doc", slow)
    converter = AttachmentAwareConverter(None, CTX, tags=tags)
    out = await converter.to_agent_input(
        [message(*(tag(f"d_{i}", f"D{i}", "doc") for i in range(4)))]
    )
    assert peak == 4
    assert out[1]["content"][1:] == [text(f"d_{i}") for i in range(4)]  # type: ignore[typeddict-item,index]
