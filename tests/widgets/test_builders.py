"""Widget builders (exact output), typed actions, and store round trips."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import pytest
from chatkit.actions import Action, ActionConfig
from chatkit.types import ThreadMetadata, WidgetItem
from pydantic import BaseModel, ValidationError

from chatkit_kit.stores import MemoryStore
from chatkit_kit.widgets import (
    CheckboxField,
    SelectField,
    TextField,
    action_type,
    confirmation_card,
    key_value_copy_text,
    key_value_list,
    parse_action,
    simple_form,
)
from tests.fixtures.context import Ctx


class OrderRef(BaseModel):
    order_id: str


class Refund(BaseModel):
    order_id: str
    reason: str
    amount: int


class ApproveOrder(Action[Literal["order.approve"], OrderRef]):
    pass


class RejectOrder(Action[Literal["order.reject"], OrderRef]):
    pass


class SubmitRefund(Action[Literal["refund.submit"], Refund]):
    pass


def config(type_: str, payload: Any) -> dict[str, Any]:
    return {
        "type": type_,
        "payload": payload,
        "handler": "server",
        "loadingBehavior": "auto",
        "streaming": True,
    }


def test_confirmation_card() -> None:
    widget = confirmation_card(
        title="Approve order 42?",
        message="The customer will be charged $10.",
        confirm=ApproveOrder.create(OrderRef(order_id="42")),
        cancel=RejectOrder.create(OrderRef(order_id="42"), streaming=False),
        confirm_label="Approve",
        widget_id="confirm-42",
    )
    assert widget.model_dump(exclude_none=True) == {
        "type": "Card",
        "id": "confirm-42",
        "size": "sm",
        "children": [
            {"type": "Title", "value": "Approve order 42?", "size": "sm"},
            {"type": "Text", "value": "The customer will be charged $10.", "color": "secondary"},
        ],
        "confirm": {"label": "Approve", "action": config("order.approve", {"order_id": "42"})},
        "cancel": {
            "label": "Cancel",
            "action": {**config("order.reject", {"order_id": "42"}), "streaming": False},
        },
    }


def test_confirmation_card_without_cancel_and_message() -> None:
    widget = confirmation_card(title="Sure?", confirm=ApproveOrder.create(OrderRef(order_id="1")))
    dumped = widget.model_dump(exclude_none=True)
    assert "cancel" not in dumped
    assert dumped["children"] == [{"type": "Title", "value": "Sure?", "size": "sm"}]


def test_builders_reject_untyped_actions() -> None:
    with pytest.raises(TypeError, match="expected an ActionConfig"):
        confirmation_card(title="x", confirm={"type": "x"})  # type: ignore[arg-type]


def test_key_value_list() -> None:
    pairs = {"Order": "#42", "Total": 10.5}
    widget = key_value_list(pairs, title="Summary")

    def row(k: str, v: str) -> dict[str, Any]:
        return {
            "type": "Row",
            "gap": 2,
            "children": [
                {"type": "Text", "value": k, "color": "secondary", "size": "sm"},
                {"type": "Spacer"},
                {"type": "Text", "value": v, "size": "sm", "textAlign": "end"},
            ],
        }

    assert widget.model_dump(exclude_none=True) == {
        "type": "Card",
        "children": [
            {"type": "Title", "value": "Summary", "size": "sm"},
            {"type": "Divider"},
            {"type": "Col", "gap": 2, "children": [row("Order", "#42"), row("Total", "10.5")]},
        ],
    }
    assert key_value_list([("a", 1)]).model_dump(exclude_none=True)["children"][0]["children"] == [
        row("a", "1")
    ]
    assert key_value_copy_text(pairs) == "Order: #42\nTotal: 10.5"


def test_simple_form() -> None:
    widget = simple_form(
        title="Request a refund",
        description="We reply within a day.",
        fields=[
            TextField("reason", "Reason", placeholder="Why?", required=True, multiline=True),
            TextField("amount", "Amount", input_type="number", default="10"),
            SelectField(
                "speed", "Speed", options=[("fast", "Fast"), ("slow", "Slow")], default="fast"
            ),
            CheckboxField("notify", "Email me", default=True),
        ],
        submit=SubmitRefund.create(Refund(order_id="42", reason="", amount=0)),
        cancel=RejectOrder.create(OrderRef(order_id="42")),
    )

    def labelled(name: str, label: str, control: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "Col",
            "gap": 1,
            "children": [{"type": "Label", "value": label, "fieldName": name}, control],
        }

    assert widget.model_dump(exclude_none=True) == {
        "type": "Card",
        "asForm": True,
        "children": [
            {"type": "Title", "value": "Request a refund", "size": "sm"},
            {"type": "Text", "value": "We reply within a day.", "color": "secondary"},
            {
                "type": "Col",
                "gap": 3,
                "children": [
                    labelled(
                        "reason",
                        "Reason",
                        {
                            "type": "Textarea",
                            "name": "reason",
                            "placeholder": "Why?",
                            "required": True,
                        },
                    ),
                    labelled(
                        "amount",
                        "Amount",
                        {
                            "type": "Input",
                            "name": "amount",
                            "inputType": "number",
                            "defaultValue": "10",
                        },
                    ),
                    labelled(
                        "speed",
                        "Speed",
                        {
                            "type": "Select",
                            "name": "speed",
                            "options": [
                                {"value": "fast", "label": "Fast"},
                                {"value": "slow", "label": "Slow"},
                            ],
                            "block": True,
                            "defaultValue": "fast",
                        },
                    ),
                    {
                        "type": "Checkbox",
                        "name": "notify",
                        "label": "Email me",
                        "defaultChecked": True,
                    },
                ],
            },
        ],
        "confirm": {
            "label": "Submit",
            "action": config("refund.submit", {"order_id": "42", "reason": "", "amount": 0}),
        },
        "cancel": {"label": "Cancel", "action": config("order.reject", {"order_id": "42"})},
    }


def test_simple_form_rules() -> None:
    submit = SubmitRefund.create(Refund(order_id="1", reason="", amount=0))
    with pytest.raises(ValueError, match="at least one field"):
        simple_form(title="x", fields=[], submit=submit)
    with pytest.raises(ValueError, match="repeated: a"):
        simple_form(title="x", fields=[TextField("a", "A"), CheckboxField("a", "A")], submit=submit)
    with pytest.raises(ValueError, match="select field 's' needs at least one option"):
        simple_form(title="x", fields=[SelectField("s", "S")], submit=submit)


def test_parse_action_is_typed_and_validates_untrusted_payloads() -> None:
    received = Action[str, Any](
        type="refund.submit", payload={"order_id": "42", "reason": "late", "amount": "5"}
    )
    refund = parse_action(received, SubmitRefund)
    assert isinstance(refund, SubmitRefund)
    assert refund.payload == Refund(order_id="42", reason="late", amount=5)
    assert parse_action(received, ApproveOrder) is None
    with pytest.raises(ValidationError):
        parse_action(
            Action[str, Any](type="refund.submit", payload={"order_id": "42"}), SubmitRefund
        )
    assert action_type(ApproveOrder) == "order.approve"
    with pytest.raises(TypeError, match="single string Literal"):
        action_type(Action[str, Any])


async def test_built_widgets_round_trip_through_the_store() -> None:
    store: MemoryStore[Ctx] = MemoryStore()
    ctx = Ctx("alice")
    await store.save_thread(ThreadMetadata(id="t", created_at=datetime(2026, 1, 1)), ctx)
    widgets = [
        confirmation_card(title="x", confirm=ApproveOrder.create(OrderRef(order_id="1"))),
        key_value_list({"a": "b"}),
        simple_form(title="f", fields=[TextField("n", "N")], submit=ActionConfig(type="go")),
    ]
    for i, widget in enumerate(widgets):
        item = WidgetItem(id=f"w{i}", thread_id="t", created_at=datetime(2026, 1, 1), widget=widget)
        await store.add_thread_item("t", item, ctx)
        assert await store.load_item("t", f"w{i}", ctx) == item
