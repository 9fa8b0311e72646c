"""Tag resolvers: turn `@`-mention tags in user messages into model context.

A `UserMessageTagContent` carries only what the client's entity search returned (`id`, `text`,
`data`, `group`). Apps register one async resolver per entity type that looks the entity up
(with the request context, so it can enforce access) and renders what the model should know.

The entity type of a tag is `tag.data["type"]` when that is a non-empty string, otherwise
`tag.group`; pass `key=` to `TagResolverRegistry` to choose differently.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias, TypeVar

from chatkit.types import UserMessageTagContent
from openai.types.responses import ResponseInputContentParam, ResponseInputTextParam

logger = logging.getLogger("chatkit_kit.converters")

TagRendering: TypeAlias = str | ResponseInputContentParam
"""What a resolver returns: text (sent as one `input_text` part) or a ready content part."""

TagResolver = Callable[[UserMessageTagContent, Any], Awaitable[TagRendering]]
"""`async def resolve(tag, context) -> str | ResponseInputContentParam`."""

TagKey: TypeAlias = Callable[[UserMessageTagContent], str | None]

_R = TypeVar("_R", bound=TagResolver)


def default_tag_key(tag: UserMessageTagContent) -> str | None:
    """The entity type of `tag`: `tag.data["type"]` if it is a non-empty str, else `tag.group`."""
    data = tag.data if isinstance(tag.data, dict) else {}
    entity_type = data.get("type")
    if isinstance(entity_type, str) and entity_type:
        return entity_type
    return tag.group or None


def default_tag_text(tag: UserMessageTagContent, entity_type: str | None) -> str:
    """The fallback rendering of a tag: its text and id (and entity type when known)."""
    if entity_type:
        return f"{tag.text} ({entity_type} id: {tag.id})"
    return f"{tag.text} (id: {tag.id})"


class TagResolverRegistry:
    """Async resolvers per entity type, with a safe default rendering.

    `render` never raises: an unregistered entity type gets the default rendering (text and id);
    a resolver that raises or exceeds `timeout` seconds gets the default rendering plus a logged
    warning, so a failing lookup never fails the user's turn.
    """

    def __init__(self, *, key: TagKey = default_tag_key, timeout: float | None = 10.0) -> None:
        if timeout is not None and timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds or None, got {timeout}")
        self.key: TagKey = key
        self.timeout = timeout
        self._resolvers: dict[str, TagResolver] = {}

    def register(self, entity_type: str, resolver: TagResolver) -> None:
        """Use `resolver` for tags of `entity_type`; ValueError if one is already registered."""
        if not isinstance(entity_type, str) or not entity_type:
            raise ValueError(f"entity_type must be a non-empty str, got {entity_type!r}")
        if entity_type in self._resolvers:
            raise ValueError(
                f"a tag resolver for entity type {entity_type!r} is already registered; "
                "call unregister() first to replace it"
            )
        self._resolvers[entity_type] = resolver

    def resolver(self, entity_type: str) -> Callable[[_R], _R]:
        """Decorator form of `register`."""

        def decorate(func: _R) -> _R:
            self.register(entity_type, func)
            return func

        return decorate

    def unregister(self, entity_type: str) -> None:
        """Forget the resolver of `entity_type` (no-op if there is none)."""
        self._resolvers.pop(entity_type, None)

    def __contains__(self, entity_type: object) -> bool:
        return entity_type in self._resolvers

    def entity_types(self) -> list[str]:
        """The registered entity types, sorted."""
        return sorted(self._resolvers)

    async def render(self, tag: UserMessageTagContent, context: Any) -> ResponseInputContentParam:
        """Render `tag` through its resolver, falling back to the default rendering."""
        entity_type = self.key(tag)
        resolver = self._resolvers.get(entity_type) if entity_type else None
        if resolver is None:
            return _text(default_tag_text(tag, entity_type))
        try:
            if self.timeout is None:
                rendered = await resolver(tag, context)
            else:
                rendered = await asyncio.wait_for(resolver(tag, context), self.timeout)
        except Exception as exc:
            logger.warning(
                "tag resolver for entity type %r failed for tag id %r (%s: %s); "
                "using the default rendering",
                entity_type,
                tag.id,
                type(exc).__name__,
                exc,
            )
            return _text(default_tag_text(tag, entity_type))
        if isinstance(rendered, str):
            return _text(rendered)
        if isinstance(rendered, dict) and rendered.get("type") in _CONTENT_TYPES:
            return rendered
        logger.warning(
            "tag resolver for entity type %r returned %s for tag id %r, expected a str or an "
            "input_text/input_image/input_file dict; using the default rendering",
            entity_type,
            type(rendered).__name__,
            tag.id,
        )
        return _text(default_tag_text(tag, entity_type))


_CONTENT_TYPES = frozenset({"input_text", "input_image", "input_file"})


def _text(text: str) -> ResponseInputTextParam:
    return ResponseInputTextParam(type="input_text", text=text)
