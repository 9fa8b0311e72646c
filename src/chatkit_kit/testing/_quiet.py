"""Silencing upstream's widget DeprecationWarning, and only it (no dependencies)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

WIDGET_DEPRECATION = "Direct usage of named widget classes is deprecated"
"""Upstream warns whenever a strict widget class (Card, Text, ...) is defined, built or
validated."""


@contextmanager
def quiet_widget_deprecation() -> Iterator[None]:
    """Silence upstream's widget DeprecationWarning (e.g. under -W error or filterwarnings)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=WIDGET_DEPRECATION, category=DeprecationWarning)
        yield


def import_chatkit_quietly() -> None:
    """Import `chatkit.types` (which defines the deprecated widget classes) without the warning."""
    with quiet_widget_deprecation():
        import chatkit.types  # noqa: F401
