"""Exact model input for every ThreadItem type through AttachmentAwareConverter."""

from __future__ import annotations

from typing import Any

from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageItem,
    ClientToolCallItem,
    CustomTask,
    EndOfTurnItem,
    GeneratedImage,
    GeneratedImageItem,
    HiddenContextItem,
    SDKHiddenContextItem,
    StructuredInputAnswer,
    StructuredInputFreeform,
    StructuredInputItem,
    StructuredInputMultipleChoice,
    StructuredInputMultipleChoiceOption,
    TaskItem,
    ThoughtTask,
    ThreadItem,
    WidgetItem,
    Workflow,
    WorkflowItem,
)
from chatkit.widgets import DynamicWidgetRoot

from chatkit_kit.converters import AttachmentAwareConverter

from .test_attachments import CTX, NOW, message, text


def base(item_id: str) -> dict[str, Any]:
    return {"id": item_id, "thread_id": "thr_1", "created_at": NOW}


def user_input(value: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [text(value)]}


async def test_every_item_type() -> None:
    widget = DynamicWidgetRoot.model_validate(
        {"type": "Card", "children": [{"type": "Text", "value": "Hi"}]}
    )
    items: list[ThreadItem] = [
        message("Hello", item_id="m1"),
        AssistantMessageItem(
            **base("a1"),
            content=[AssistantMessageContent(text="Hi"), AssistantMessageContent(text="!")],
        ),
        ClientToolCallItem(
            **base("tc1"),
            status="completed",
            call_id="call_1",
            name="get_location",
            arguments={"precise": True},
            output={"city": "Oslo"},
        ),
        ClientToolCallItem(**base("tc2"), call_id="call_2", name="pending_tool", arguments={}),
        WidgetItem(**base("w1"), widget=widget, copy_text="Hi"),
        WorkflowItem(
            **base("wf1"),
            workflow=Workflow(
                type="custom",
                tasks=[
                    CustomTask(title="Searched", content="3 results"),
                    ThoughtTask(content="hidden thought"),
                    CustomTask(content="Only content"),
                    CustomTask(),
                ],
            ),
        ),
        TaskItem(**base("t1"), task=CustomTask(title="Booked")),
        TaskItem(**base("t2"), task=ThoughtTask(content="not sent")),
        StructuredInputItem(
            **base("si1"),
            status="answered",
            inputs=[
                StructuredInputMultipleChoice(
                    id="q1",
                    question="Colors?",
                    options=[StructuredInputMultipleChoiceOption(value="red")],
                    answer=StructuredInputAnswer(values=["red", "blue"]),
                ),
                StructuredInputFreeform(
                    id="q2", question="Why?", answer=StructuredInputAnswer(skipped=True)
                ),
                StructuredInputFreeform(id="q3", question="When?"),
            ],
        ),
        HiddenContextItem(**base("h1"), content="plan: be brief"),
        SDKHiddenContextItem(**base("sh1"), content="The user cancelled the stream."),
        GeneratedImageItem(
            **base("g1"), image=GeneratedImage(id="img", url="https://i.test/1.png")
        ),
        GeneratedImageItem(**base("g2")),
        EndOfTurnItem(**base("e1")),
        message("Last", item_id="m2"),
    ]
    out = await AttachmentAwareConverter(None, CTX).to_agent_input(items)
    task_text = "A message was displayed to the user that the following task was performed:\n"
    hidden = "Hidden context for the agent (not shown to the user):\n"
    assert out == [
        {"role": "user", "type": "message", "content": [text("Hello")]},
        {
            "type": "message",
            "role": "assistant",
            # Plain text, which both model APIs take (parts joined by a blank line).
            "content": "Hi\n\n!",
        },
        {
            "type": "function_call",
            "call_id": "call_1",
            "name": "get_location",
            "arguments": '{"precise": true}',
        },
        {"type": "function_call_output", "call_id": "call_1", "output": '{"city": "Oslo"}'},
        user_input(
            "The following graphical UI widget (id: w1) was displayed to the user:"
            '{"type":"Card","children":[{"type":"Text","value":"Hi"}]}'
        ),
        user_input(task_text + "<Task>\nSearched: 3 results\n</Task>"),
        user_input(task_text + "<Task>\nOnly content\n</Task>"),
        user_input(task_text + "<Task>\nBooked\n</Task>"),
        user_input(
            "A structured input request was displayed to the user with the following status: "
            "answered\n<StructuredInput>\n- Colors?: red, blue\n- Why?: skipped\n"
            "- When?: unanswered\n</StructuredInput>"
        ),
        user_input(hidden + "<HiddenContext>\nplan: be brief\n</HiddenContext>"),
        user_input(hidden + "<HiddenContext>\nThe user cancelled the stream.\n</HiddenContext>"),
        {
            "type": "message",
            "role": "user",
            "content": [
                text("The following image was generated by the agent."),
                {"type": "input_image", "detail": "auto", "image_url": "https://i.test/1.png"},
            ],
        },
        {"role": "user", "type": "message", "content": [text("Last")]},
    ]
