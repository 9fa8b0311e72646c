"""The shapes of a `.widget` file, and where its preview data lives.

Upstream's `WidgetTemplate` reads only `version`, `name`, `template` and `jsonSchema`; every
other key is optional and must not stop a file from loading. Exports from
widgets.chatkit.studio add `outputJsonPreview` and `encodedWidget`, which is base64 (url-safe or
standard, padded or not) of either a JSON object whose `defaultState` is the preview data, or of
the template text itself (no preview data then). Hand-written files may carry preview data as a
top-level `defaultState` object.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

MAX_WIDGET_FILE_BYTES = 4 * 1024 * 1024
"""Larger `.widget` files are refused; exports are a few kilobytes."""


@dataclass(frozen=True)
class Preview:
    """Preview data found in a file, or why there is none."""

    data: dict[str, Any] | None
    source: str
    """Where the data came from (`defaultState`, `encodedWidget.defaultState`) or, without
    data, why there is none."""


def find_preview(raw: dict[str, Any]) -> Preview:
    """The preview data of a parsed `.widget` file; `data` is None when the file has none."""
    if raw.get("defaultState") is not None:
        return _state(raw["defaultState"], "defaultState")
    encoded = raw.get("encodedWidget")
    if encoded is None or encoded == "":
        return Preview(None, "the file has no defaultState and no encodedWidget")
    if not isinstance(encoded, str):
        return Preview(None, f"'encodedWidget' is a {type(encoded).__name__}, not base64 text")
    decoded = _decode_base64(encoded)
    if decoded is None:
        return Preview(None, "'encodedWidget' is not base64 text")
    try:
        content = json.loads(decoded)
    except ValueError:
        # Some exports keep the Jinja template text here instead of a JSON object.
        return Preview(None, "'encodedWidget' holds template text, which carries no preview data")
    if not isinstance(content, dict) or content.get("defaultState") is None:
        return Preview(None, "'encodedWidget' has no defaultState")
    return _state(content["defaultState"], "encodedWidget.defaultState")


def _state(value: Any, source: str) -> Preview:
    if not isinstance(value, dict):
        return Preview(None, f"'{source}' must be a JSON object, got {type(value).__name__}")
    return Preview(value, source)


def _decode_base64(text: str) -> str | None:
    compact = "".join(text.split()).replace("-", "+").replace("_", "/").rstrip("=")
    try:
        raw = base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
        return raw.decode("utf-8")
    except (binascii.Error, ValueError):
        return None
