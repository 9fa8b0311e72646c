"""Convert ChatKit thread items to model input: attachments, tags and turn-aware history.

See docs/converters.md.
"""

from __future__ import annotations

from ..attachments import AttachmentContentSource
from .attachments import (
    MENTIONS_HEADER,
    MODEL_IMAGE_TYPES,
    TEXT_EXTENSIONS,
    TEXT_MIME_TYPES,
    AttachmentAwareConverter,
    AttachmentKind,
    ModelApi,
    model_api_of,
)
from .history import ATTACHMENT_TOKEN_ESTIMATE, estimate_item_tokens, load_history
from .tags import (
    TagRendering,
    TagResolver,
    TagResolverRegistry,
    default_tag_key,
    default_tag_text,
)

__all__ = [
    "ATTACHMENT_TOKEN_ESTIMATE",
    "MENTIONS_HEADER",
    "MODEL_IMAGE_TYPES",
    "TEXT_EXTENSIONS",
    "TEXT_MIME_TYPES",
    "AttachmentAwareConverter",
    "AttachmentContentSource",
    "AttachmentKind",
    "ModelApi",
    "TagRendering",
    "TagResolver",
    "TagResolverRegistry",
    "default_tag_key",
    "default_tag_text",
    "estimate_item_tokens",
    "load_history",
    "model_api_of",
]
