"""Widget helpers: a `.widget` file registry, store-backed widget items, common builders.

See docs/widgets.md.
"""

from __future__ import annotations

from .builders import (
    CheckboxField,
    FormField,
    SelectField,
    TextField,
    action_type,
    confirmation_card,
    key_value_copy_text,
    key_value_list,
    parse_action,
    simple_form,
)
from .items import (
    new_widget_item,
    replace_widget,
    replace_widget_for_sync_action,
    stream_widget_item,
    widget_done_event,
)
from .items import sync_replace_widget as sync_replace_widget  # deprecated; not in __all__
from .registry import (
    PreviewMode,
    RegistryKeys,
    WidgetBuildError,
    WidgetDefinition,
    WidgetError,
    WidgetFileError,
    WidgetPreviewWarning,
    WidgetRegistry,
    load_widget_file,
)

__all__ = [
    "CheckboxField",
    "FormField",
    "PreviewMode",
    "RegistryKeys",
    "SelectField",
    "TextField",
    "WidgetBuildError",
    "WidgetDefinition",
    "WidgetError",
    "WidgetFileError",
    "WidgetPreviewWarning",
    "WidgetRegistry",
    "action_type",
    "confirmation_card",
    "key_value_copy_text",
    "key_value_list",
    "load_widget_file",
    "new_widget_item",
    "parse_action",
    "replace_widget",
    "replace_widget_for_sync_action",
    "simple_form",
    "stream_widget_item",
    "widget_done_event",
]
