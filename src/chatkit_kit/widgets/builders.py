"""Builders for common widgets, and typed actions to wire them to `ChatKitServer.action()`.

The builders return `DynamicWidgetRoot`s (what `.widget` templates produce), so they avoid the
deprecated named widget classes and round-trip through chatkit-kit stores unchanged.

Actions are typed with upstream's `Action[Literal["type"], Payload]`: `MyAction.create(payload)`
gives the `ActionConfig` a widget carries, and `parse_action(action, MyAction)` turns the
untrusted `Action[str, Any]` the server receives back into a validated `MyAction`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias, TypeVar, get_args, get_origin

from chatkit.actions import Action, ActionConfig
from chatkit.widgets import DynamicWidgetRoot

A = TypeVar("A", bound=Action[Any, Any])


def action_type(action_class: type[Action[Any, Any]]) -> str:
    """The single literal `type` of a typed `Action` subclass; TypeError otherwise."""
    annotation = action_class.model_fields["type"].annotation
    if get_origin(annotation) is Literal:
        values = get_args(annotation)
        if len(values) == 1 and isinstance(values[0], str):
            return values[0]
    raise TypeError(
        f"{action_class.__name__} must declare its type as a single string Literal, e.g. "
        f'class {action_class.__name__}(Action[Literal["my.action"], MyPayload])'
    )


def parse_action(action: Action[str, Any], action_class: type[A]) -> A | None:
    """Validate a received action as `action_class`; None if its type is a different one.

    Raises pydantic `ValidationError` when the type matches but the payload does not; form
    values merged into the payload by the client are untrusted input.
    """
    if action.type != action_type(action_class):
        return None
    return action_class.model_validate({"type": action.type, "payload": action.payload})


def _action(config: ActionConfig) -> dict[str, Any]:
    if not isinstance(config, ActionConfig):
        raise TypeError(
            f"expected an ActionConfig (from MyAction.create(payload)), got {type(config).__name__}"
        )
    dumped: dict[str, Any] = _drop_none(config.model_dump(mode="json"))
    return dumped


def _drop_none(value: Any) -> Any:
    # Widgets serialize without None values (upstream `_drop_none`); dropping them here too
    # keeps a built widget equal to itself after a store round trip.
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value if v is not None]
    return value


def _root(widget: dict[str, Any]) -> DynamicWidgetRoot:
    return DynamicWidgetRoot.model_validate(widget)


def _text_block(title: str | None, message: str | None) -> list[dict[str, Any]]:
    children: list[dict[str, Any]] = []
    if title:
        children.append({"type": "Title", "value": title, "size": "sm"})
    if message:
        children.append({"type": "Text", "value": message, "color": "secondary"})
    return children


def confirmation_card(
    *,
    title: str,
    message: str | None = None,
    confirm: ActionConfig,
    cancel: ActionConfig | None = None,
    confirm_label: str = "Confirm",
    cancel_label: str = "Cancel",
    widget_id: str | None = None,
) -> DynamicWidgetRoot:
    """A card asking the user to confirm something, with Confirm and Cancel footer buttons."""
    card: dict[str, Any] = {
        "type": "Card",
        "size": "sm",
        "children": _text_block(title, message),
        "confirm": {"label": confirm_label, "action": _action(confirm)},
    }
    if cancel is not None:
        card["cancel"] = {"label": cancel_label, "action": _action(cancel)}
    if widget_id is not None:
        card["id"] = widget_id
    return _root(card)


def key_value_list(
    pairs: Mapping[str, Any] | Iterable[tuple[str, Any]],
    *,
    title: str | None = None,
    widget_id: str | None = None,
) -> DynamicWidgetRoot:
    """A card listing label/value rows; values are shown with `str()`."""
    items = list(pairs.items()) if isinstance(pairs, Mapping) else list(pairs)
    rows: list[dict[str, Any]] = [
        {
            "type": "Row",
            "gap": 2,
            "children": [
                {"type": "Text", "value": str(label), "color": "secondary", "size": "sm"},
                {"type": "Spacer"},
                {"type": "Text", "value": str(value), "size": "sm", "textAlign": "end"},
            ],
        }
        for label, value in items
    ]
    children: list[dict[str, Any]] = _text_block(title, None)
    if title and rows:
        children.append({"type": "Divider"})
    children.append({"type": "Col", "gap": 2, "children": rows})
    card: dict[str, Any] = {"type": "Card", "children": children}
    if widget_id is not None:
        card["id"] = widget_id
    return _root(card)


def key_value_copy_text(pairs: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> str:
    """Clipboard text for a key-value list: one `label: value` line per row."""
    items = list(pairs.items()) if isinstance(pairs, Mapping) else list(pairs)
    return "\n".join(f"{label}: {value}" for label, value in items)


@dataclass(frozen=True)
class TextField:
    """A single-line or multi-line text input."""

    name: str
    label: str
    placeholder: str | None = None
    default: str | None = None
    required: bool = False
    multiline: bool = False
    input_type: Literal["text", "email", "number", "tel", "url", "password"] = "text"


@dataclass(frozen=True)
class SelectField:
    """A dropdown of `(value, label)` options."""

    name: str
    label: str
    options: Sequence[tuple[str, str]] = field(default_factory=tuple)
    default: str | None = None
    placeholder: str | None = None


@dataclass(frozen=True)
class CheckboxField:
    """A checkbox; submitted as a boolean."""

    name: str
    label: str
    default: bool = False
    required: bool = False


FormField: TypeAlias = TextField | SelectField | CheckboxField


def _field(spec: FormField) -> dict[str, Any]:
    if isinstance(spec, CheckboxField):
        checkbox: dict[str, Any] = {
            "type": "Checkbox",
            "name": spec.name,
            "label": spec.label,
            "defaultChecked": spec.default,
        }
        if spec.required:
            checkbox["required"] = True
        return checkbox
    control: dict[str, Any]
    if isinstance(spec, SelectField):
        if not spec.options:
            raise ValueError(f"select field {spec.name!r} needs at least one option")
        control = {
            "type": "Select",
            "name": spec.name,
            "options": [{"value": value, "label": label} for value, label in spec.options],
            "block": True,
        }
        if spec.placeholder is not None:
            control["placeholder"] = spec.placeholder
    elif isinstance(spec, TextField):
        control = {"type": "Textarea" if spec.multiline else "Input", "name": spec.name}
        if not spec.multiline and spec.input_type != "text":
            control["inputType"] = spec.input_type
        if spec.placeholder is not None:
            control["placeholder"] = spec.placeholder
        if spec.required:
            control["required"] = True
    else:
        raise TypeError(f"unsupported form field {spec!r}")
    if spec.default is not None:
        control["defaultValue"] = spec.default
    return {
        "type": "Col",
        "gap": 1,
        "children": [{"type": "Label", "value": spec.label, "fieldName": spec.name}, control],
    }


def simple_form(
    *,
    title: str,
    fields: Sequence[FormField],
    submit: ActionConfig,
    cancel: ActionConfig | None = None,
    description: str | None = None,
    submit_label: str = "Submit",
    cancel_label: str = "Cancel",
    widget_id: str | None = None,
) -> DynamicWidgetRoot:
    """A card form; on submit the client merges field values into `submit`'s payload by name.

    Field names must be unique. Validate the submitted payload with `parse_action`: it is user
    input.
    """
    names = [spec.name for spec in fields]
    if not fields:
        raise ValueError("simple_form needs at least one field")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"form field names must be unique; repeated: {', '.join(duplicates)}")
    card: dict[str, Any] = {
        "type": "Card",
        "asForm": True,
        "children": [
            *_text_block(title, description),
            {"type": "Col", "gap": 3, "children": [_field(spec) for spec in fields]},
        ],
        "confirm": {"label": submit_label, "action": _action(submit)},
    }
    if cancel is not None:
        card["cancel"] = {"label": cancel_label, "action": _action(cancel)}
    if widget_id is not None:
        card["id"] = widget_id
    return _root(card)
