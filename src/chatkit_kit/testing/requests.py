"""Typed builders for every ChatKit request type upstream accepts.

Each returns upstream's request model (`chatkit.types.*Req`), ready for
`ChatKitTestClient.stream`/`call`, `ChatKitServer.process(request.model_dump_json(), ctx)`
or `model_dump(mode="json")` when you need the wire JSON.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeAlias, TypedDict

from chatkit.actions import Action
from chatkit.types import (
    AttachmentCreateParams,
    AttachmentDeleteParams,
    AttachmentsCreateReq,
    AttachmentsDeleteReq,
    FeedbackKind,
    InferenceOptions,
    InputTranscribeParams,
    InputTranscribeReq,
    ItemFeedbackParams,
    ItemsFeedbackReq,
    ItemsListParams,
    ItemsListReq,
    NonStreamingReq,
    StreamingReq,
    StructuredInputAnswerSubmission,
    StructuredInputSubmission,
    ThreadAddClientToolOutputParams,
    ThreadAddStructuredInputParams,
    ThreadAddUserMessageParams,
    ThreadCreateParams,
    ThreadCustomActionParams,
    ThreadDeleteParams,
    ThreadGetByIdParams,
    ThreadListParams,
    ThreadRetryAfterItemParams,
    ThreadsAddClientToolOutputReq,
    ThreadsAddStructuredInputReq,
    ThreadsAddUserMessageReq,
    ThreadsCreateReq,
    ThreadsCustomActionReq,
    ThreadsDeleteReq,
    ThreadsGetByIdReq,
    ThreadsListReq,
    ThreadsRetryAfterItemReq,
    ThreadsSyncCustomActionReq,
    ThreadsUpdateReq,
    ThreadUpdateParams,
    ToolChoice,
    UserMessageContent,
    UserMessageInput,
    UserMessageTagContent,
    UserMessageTextContent,
)
from typing_extensions import Unpack

__all__ = [
    "ChatKitRequest",
    "MessageOptions",
    "Tag",
    "add_client_tool_output",
    "add_structured_input",
    "add_user_message",
    "create_attachment",
    "create_thread",
    "custom_action",
    "delete_attachment",
    "delete_thread",
    "feedback",
    "get_thread",
    "list_items",
    "list_threads",
    "retry_after_item",
    "sync_custom_action",
    "transcribe",
    "update_thread",
    "user_input",
]

ChatKitRequest: TypeAlias = StreamingReq | NonStreamingReq
Tag: TypeAlias = UserMessageTagContent
Order = Literal["asc", "desc"]


class MessageOptions(TypedDict, total=False):
    """The keyword arguments of `user_input` after `text` (and of the builders that take one)."""

    attachments: Sequence[Any]
    tags: Sequence[Tag]
    quoted_text: str | None
    model: str | None
    tool_choice: str | None


def user_input(
    text: str = "",
    *,
    attachments: Sequence[Any] = (),
    tags: Sequence[Tag] = (),
    quoted_text: str | None = None,
    model: str | None = None,
    tool_choice: str | None = None,
) -> UserMessageInput:
    """A user message: `text`, then `tags` (`@`-mentions), with attachment ids or attachments."""
    content: list[UserMessageContent] = []
    if text or not tags:
        content.append(UserMessageTextContent(text=text))
    content.extend(tags)
    return UserMessageInput(
        content=content,
        attachments=[a if isinstance(a, str) else a.id for a in attachments],
        quoted_text=quoted_text,
        inference_options=InferenceOptions(
            model=model, tool_choice=ToolChoice(id=tool_choice) if tool_choice else None
        ),
    )


def create_thread(text: str = "", **message: Unpack[MessageOptions]) -> ThreadsCreateReq:
    """`threads.create`; `message` as for `user_input`."""
    return ThreadsCreateReq(params=ThreadCreateParams(input=user_input(text, **message)))


def add_user_message(
    thread_id: str, text: str = "", **message: Unpack[MessageOptions]
) -> ThreadsAddUserMessageReq:
    """`threads.add_user_message`; `message` as for `user_input`."""
    return ThreadsAddUserMessageReq(
        params=ThreadAddUserMessageParams(thread_id=thread_id, input=user_input(text, **message))
    )


def add_client_tool_output(thread_id: str, result: Any) -> ThreadsAddClientToolOutputReq:
    """`threads.add_client_tool_output`."""
    return ThreadsAddClientToolOutputReq(
        params=ThreadAddClientToolOutputParams(thread_id=thread_id, result=result)
    )


def add_structured_input(
    thread_id: str,
    item_id: str,
    answers: Mapping[str, Sequence[str] | None],
    *,
    status: Literal["answered", "skipped"] = "answered",
) -> ThreadsAddStructuredInputReq:
    """`threads.add_structured_input`; an answer of None skips that question."""
    return ThreadsAddStructuredInputReq(
        params=ThreadAddStructuredInputParams(
            thread_id=thread_id,
            item_id=item_id,
            input=StructuredInputSubmission(
                status=status,
                answers={
                    key: StructuredInputAnswerSubmission(skipped=True)
                    if values is None
                    else StructuredInputAnswerSubmission(values=list(values))
                    for key, values in answers.items()
                },
            ),
        )
    )


def retry_after_item(thread_id: str, item_id: str) -> ThreadsRetryAfterItemReq:
    """`threads.retry_after_item`."""
    return ThreadsRetryAfterItemReq(
        params=ThreadRetryAfterItemParams(thread_id=thread_id, item_id=item_id)
    )


def _action_params(
    thread_id: str, action_type: str, payload: Any, item_id: str | None
) -> ThreadCustomActionParams:
    return ThreadCustomActionParams(
        thread_id=thread_id, item_id=item_id, action=Action(type=action_type, payload=payload)
    )


def custom_action(
    thread_id: str, action_type: str, payload: Any = None, *, item_id: str | None = None
) -> ThreadsCustomActionReq:
    """`threads.custom_action` (a widget action, streamed)."""
    return ThreadsCustomActionReq(params=_action_params(thread_id, action_type, payload, item_id))


def sync_custom_action(
    thread_id: str, action_type: str, payload: Any = None, *, item_id: str | None = None
) -> ThreadsSyncCustomActionReq:
    """`threads.sync_custom_action` (a widget action answered with JSON)."""
    return ThreadsSyncCustomActionReq(
        params=_action_params(thread_id, action_type, payload, item_id)
    )


def get_thread(thread_id: str) -> ThreadsGetByIdReq:
    """`threads.get_by_id`."""
    return ThreadsGetByIdReq(params=ThreadGetByIdParams(thread_id=thread_id))


def list_threads(
    *, limit: int | None = None, after: str | None = None, order: Order = "desc"
) -> ThreadsListReq:
    """`threads.list`."""
    return ThreadsListReq(params=ThreadListParams(limit=limit, after=after, order=order))


def list_items(
    thread_id: str, *, limit: int | None = None, after: str | None = None, order: Order = "desc"
) -> ItemsListReq:
    """`items.list`."""
    return ItemsListReq(
        params=ItemsListParams(thread_id=thread_id, limit=limit, after=after, order=order)
    )


def update_thread(thread_id: str, title: str) -> ThreadsUpdateReq:
    """`threads.update`."""
    return ThreadsUpdateReq(params=ThreadUpdateParams(thread_id=thread_id, title=title))


def delete_thread(thread_id: str) -> ThreadsDeleteReq:
    """`threads.delete`."""
    return ThreadsDeleteReq(params=ThreadDeleteParams(thread_id=thread_id))


def feedback(thread_id: str, item_ids: Sequence[str], kind: FeedbackKind) -> ItemsFeedbackReq:
    """`items.feedback`."""
    return ItemsFeedbackReq(
        params=ItemFeedbackParams(thread_id=thread_id, item_ids=list(item_ids), kind=kind)
    )


def create_attachment(name: str, size: int, mime_type: str) -> AttachmentsCreateReq:
    """`attachments.create`."""
    return AttachmentsCreateReq(
        params=AttachmentCreateParams(name=name, size=size, mime_type=mime_type)
    )


def delete_attachment(attachment_id: str) -> AttachmentsDeleteReq:
    """`attachments.delete`."""
    return AttachmentsDeleteReq(params=AttachmentDeleteParams(attachment_id=attachment_id))


def transcribe(audio_base64: str, mime_type: str) -> InputTranscribeReq:
    """`input.transcribe`."""
    return InputTranscribeReq(
        params=InputTranscribeParams(audio_base64=audio_base64, mime_type=mime_type)
    )
