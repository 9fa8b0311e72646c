"""Hypothesis strategies for every model a ChatKit `Store` keeps.

Text is drawn from all of Unicode (U+0000 included; lone surrogates excluded, as JSON cannot carry
them), with occasional long strings; datetimes are naive or aware (fixed offsets, UTC), with
microseconds; `thread_items_sharing_timestamps` draws many items with one `created_at`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from ._quiet import import_chatkit_quietly, quiet_widget_deprecation

import_chatkit_quietly()

from chatkit.types import (  # noqa: E402
    ActiveStatus,
    Annotation,
    AssistantMessageContent,
    AssistantMessageItem,
    Attachment,
    AttachmentUploadDescriptor,
    ClientToolCallItem,
    ClosedStatus,
    CustomSummary,
    CustomTask,
    DurationSummary,
    EndOfTurnItem,
    EntitySource,
    FileAttachment,
    FileSource,
    FileTask,
    GeneratedImage,
    GeneratedImageItem,
    HiddenContextItem,
    ImageAttachment,
    ImageTask,
    InferenceOptions,
    LockedStatus,
    SDKHiddenContextItem,
    SearchTask,
    StructuredInputAnswer,
    StructuredInputFreeform,
    StructuredInputItem,
    StructuredInputMultipleChoice,
    StructuredInputMultipleChoiceOption,
    TaskItem,
    ThoughtTask,
    ThreadItem,
    ThreadMetadata,
    ToolChoice,
    URLSource,
    UserMessageItem,
    UserMessageTagContent,
    UserMessageTextContent,
    WidgetItem,
    Workflow,
    WorkflowItem,
)
from chatkit.widgets import (  # noqa: E402
    BasicRoot,
    Card,
    Col,
    DynamicWidgetRoot,
    ListView,
    ListViewItem,
    Text,
    WidgetRoot,
)
from hypothesis import strategies as st  # noqa: E402

from ..stores import MAX_ID_BYTES  # noqa: E402

__all__ = [
    "HOSTILE_IDS",
    "WIDGET_ROOT_KINDS",
    "assistant_message_items",
    "attachments",
    "client_tool_call_items",
    "created_at",
    "end_of_turn_items",
    "file_attachments",
    "generated_image_items",
    "hidden_context_items",
    "image_attachments",
    "item_kinds",
    "json_values",
    "sdk_hidden_context_items",
    "server_created_at",
    "storable_ids",
    "structured_input_items",
    "task_items",
    "tasks",
    "texts",
    "thread_items",
    "thread_items_sharing_timestamps",
    "thread_metadata",
    "thread_statuses",
    "user_message_items",
    "widget_items",
    "workflow_items",
]

HOSTILE_IDS: tuple[str, ...] = (
    "it's",
    'say "hi"',
    "100%",
    "a_b",
    "%_%",
    "back\\slash",
    "'; DROP TABLE threads; --",
    "ünïcødé 🧵",
    "x" * MAX_ID_BYTES,
)
"""Ids that break naive SQL (quotes, LIKE wildcards, backslashes) and the longest storable id."""

_short_text = st.text(max_size=24)
texts: st.SearchStrategy[str] = st.one_of(
    _short_text,
    _short_text,
    _short_text,
    st.text(min_size=1, max_size=8).map(lambda s: s * 700),  # long strings, up to ~5k chars
)
"""Text from all of Unicode, U+0000 included, sometimes thousands of characters long."""

storable_ids: st.SearchStrategy[str] = st.one_of(
    st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=24),
    st.sampled_from(HOSTILE_IDS),
)
"""Ids every store must accept: short, anything but U+0000, and the hostile ids."""

_offsets = st.one_of(
    st.just(timezone.utc),
    st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59).map(
        lambda minutes: timezone(timedelta(minutes=minutes))
    ),
)
created_at: st.SearchStrategy[datetime] = st.datetimes(
    min_value=datetime(1971, 1, 2),
    max_value=datetime(2099, 12, 30),
    timezones=st.one_of(st.none(), _offsets),
)
"""Naive or aware datetimes with microseconds, in the range a platform can localize."""

server_created_at: st.SearchStrategy[datetime] = st.datetimes(
    min_value=datetime(1971, 1, 2), max_value=datetime(2099, 12, 30)
)
"""Naive datetimes with microseconds: what `ChatKitServer` stamps (`datetime.now()`). The
conformance rules use these, except the rule about aware values (`datetimes-exact`)."""

_non_null_json_scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    _short_text,
)
_json_scalars = st.none() | _non_null_json_scalars
json_values: st.SearchStrategy[Any] = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_short_text, inner, max_size=4),
    max_leaves=12,
)
"""JSON-compatible values (what `metadata`, tool arguments and hidden content can hold)."""

_json_objects = st.dictionaries(_short_text, json_values, max_size=4)
# Upstream's widget serializer drops None-valued props at any depth, so widget props hold no None.
# (Built without `none()` rather than filtered: a filtered `none()` branch makes hypothesis give
# up on the whole example, which cost three of every four generated threads.)
_widget_props: st.SearchStrategy[Any] = st.recursive(
    _non_null_json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_short_text, inner, max_size=3),
    max_leaves=6,
)
_optional_text = st.none() | texts

thread_statuses = st.one_of(
    st.builds(ActiveStatus),
    st.builds(LockedStatus, reason=_optional_text),
    st.builds(ClosedStatus, reason=_optional_text),
)
"""Every thread status: active, locked and closed, with and without a reason."""


def thread_metadata(
    ids: st.SearchStrategy[str] = storable_ids,
    timestamps: st.SearchStrategy[datetime] = created_at,
) -> st.SearchStrategy[ThreadMetadata]:
    """Thread metadata with every status, optional title, image domains and metadata."""
    return st.builds(
        ThreadMetadata,
        id=ids,
        created_at=timestamps,
        title=_optional_text,
        status=thread_statuses,
        allowed_image_domains=st.none() | st.lists(_short_text, max_size=3),
        metadata=_json_objects,
    )


_urls = st.sampled_from(
    [
        "https://example.com/a.png",
        "https://files.example.com/upload?X-Amz-Signature=abc%2F&X-Amz-Expires=60",
        "http://127.0.0.1:8000/chatkit/attachments/atc_1",
        "data:image/png;base64,iVBORw0KGgo=",
    ]
)
_upload_descriptors = st.builds(
    AttachmentUploadDescriptor,
    url=_urls.filter(lambda u: not u.startswith("data:")),
    method=st.sampled_from(["POST", "PUT"]),
    headers=st.dictionaries(st.sampled_from(["Content-Type", "x-amz-meta-a"]), _short_text),
)
_mime_types = st.sampled_from(["text/plain", "application/pdf", "image/png", "image/jpeg"])


def file_attachments(ids: st.SearchStrategy[str] = storable_ids) -> st.SearchStrategy[Attachment]:
    """File attachments, with and without an upload descriptor, thread id and metadata."""
    return st.builds(
        FileAttachment,
        id=ids,
        name=texts,
        mime_type=_mime_types,
        upload_descriptor=st.none() | _upload_descriptors,
        thread_id=st.none() | storable_ids,
        metadata=st.none() | _json_objects,
    )


def image_attachments(ids: st.SearchStrategy[str] = storable_ids) -> st.SearchStrategy[Attachment]:
    """Image attachments (with a preview URL), with and without an upload descriptor."""
    return st.builds(
        ImageAttachment,
        id=ids,
        name=texts,
        mime_type=st.sampled_from(["image/png", "image/jpeg", "image/webp"]),
        preview_url=_urls,
        upload_descriptor=st.none() | _upload_descriptors,
        thread_id=st.none() | storable_ids,
        metadata=st.none() | _json_objects,
    )


def attachments(ids: st.SearchStrategy[str] = storable_ids) -> st.SearchStrategy[Attachment]:
    """File or image attachments."""
    return file_attachments(ids) | image_attachments(ids)


_sources = st.one_of(
    st.builds(URLSource, title=texts, url=_urls, attribution=_optional_text),
    st.builds(FileSource, title=texts, filename=texts, description=_optional_text),
    st.builds(
        EntitySource, title=texts, id=_short_text, label=_optional_text, interactive=st.booleans()
    ),
)
tasks = st.one_of(
    st.builds(
        CustomTask, title=_optional_text, content=_optional_text, icon=st.none() | st.just("agent")
    ),
    st.builds(
        SearchTask,
        title=_optional_text,
        queries=st.lists(_short_text, max_size=3),
        sources=st.lists(st.builds(URLSource, title=texts, url=_urls), max_size=2),
    ),
    st.builds(ThoughtTask, title=_optional_text, content=texts),
    st.builds(
        FileTask,
        title=_optional_text,
        sources=st.lists(st.builds(FileSource, title=texts, filename=texts), max_size=2),
    ),
    st.builds(
        ImageTask,
        title=_optional_text,
        status_indicator=st.sampled_from(["none", "loading", "complete"]),
    ),
)
"""Every workflow task type."""

_Base = dict[str, st.SearchStrategy[Any]]


def _base(
    ids: st.SearchStrategy[str],
    timestamps: st.SearchStrategy[datetime],
    thread_ids: st.SearchStrategy[str],
) -> _Base:
    return {"id": ids, "thread_id": thread_ids, "created_at": timestamps}


def user_message_items(
    ids: st.SearchStrategy[str] = storable_ids,
    timestamps: st.SearchStrategy[datetime] = created_at,
    thread_ids: st.SearchStrategy[str] = storable_ids,
) -> st.SearchStrategy[ThreadItem]:
    """User messages with text and tag content, attachments, quoted text and inference options."""
    content = st.lists(
        st.builds(UserMessageTextContent, text=texts)
        | st.builds(
            UserMessageTagContent,
            id=_short_text,
            text=texts,
            data=_json_objects,
            group=st.none() | _short_text,
            interactive=st.booleans(),
        ),
        max_size=4,
    )
    return st.builds(
        UserMessageItem,
        **_base(ids, timestamps, thread_ids),
        content=content,
        attachments=st.lists(attachments(), max_size=2),
        quoted_text=_optional_text,
        inference_options=st.builds(
            InferenceOptions,
            tool_choice=st.none() | st.builds(ToolChoice, id=_short_text),
            model=st.none() | _short_text,
        ),
    )


def assistant_message_items(
    ids: st.SearchStrategy[str] = storable_ids,
    timestamps: st.SearchStrategy[datetime] = created_at,
    thread_ids: st.SearchStrategy[str] = storable_ids,
) -> st.SearchStrategy[ThreadItem]:
    """Assistant messages with annotations of every source type."""
    annotation = st.builds(Annotation, source=_sources, index=st.none() | st.integers(0, 10_000))
    content = st.lists(
        st.builds(
            AssistantMessageContent, text=texts, annotations=st.lists(annotation, max_size=2)
        ),
        max_size=3,
    )
    return st.builds(AssistantMessageItem, **_base(ids, timestamps, thread_ids), content=content)


def client_tool_call_items(
    ids: st.SearchStrategy[str] = storable_ids,
    timestamps: st.SearchStrategy[datetime] = created_at,
    thread_ids: st.SearchStrategy[str] = storable_ids,
) -> st.SearchStrategy[ThreadItem]:
    """Pending and completed client tool calls."""
    return st.builds(
        ClientToolCallItem,
        **_base(ids, timestamps, thread_ids),
        status=st.sampled_from(["pending", "completed"]),
        call_id=_short_text,
        name=_short_text,
        arguments=_json_objects,
        output=json_values,
    )


def _template_root(text: str, extra: Any) -> WidgetRoot:
    return DynamicWidgetRoot.model_validate(
        {
            "type": "Card",
            "size": "md",
            "children": [
                {"type": "Text", "id": "body", "value": text, "streaming": False},
                {"type": "Table", "rows": [[text]], "customProp": extra},
            ],
        }
    )


def _card_root(text: str, extra: Any) -> WidgetRoot:
    with quiet_widget_deprecation():
        return Card(
            size="sm",
            children=[Text(value=text), Col(padding={"x": 2}, children=[Text(value="x")])],
        )


def _list_view_root(text: str, extra: Any) -> WidgetRoot:
    with quiet_widget_deprecation():
        return ListView(
            limit=3,
            children=[ListViewItem(children=[Text(value=text)], gap=1)],
        )


def _basic_root(text: str, extra: Any) -> WidgetRoot:
    return BasicRoot.model_validate(
        {"children": [{"type": "Text", "value": text}], "gap": 2, "customProp": extra}
    )


WIDGET_ROOT_KINDS: dict[str, Callable[[str, Any], WidgetRoot]] = {
    "Card": _card_root,
    "ListView": _list_view_root,
    "BasicRoot": _basic_root,
    "DynamicWidgetRoot": _template_root,
}
"""Every kind of widget root: strict Card and ListView, BasicRoot, and template-built
DynamicWidgetRoot (with properties the strict classes do not know)."""


def widget_items(
    ids: st.SearchStrategy[str] = storable_ids,
    timestamps: st.SearchStrategy[datetime] = created_at,
    thread_ids: st.SearchStrategy[str] = storable_ids,
    roots: tuple[str, ...] = tuple(WIDGET_ROOT_KINDS),
) -> st.SearchStrategy[ThreadItem]:
    """Widget items with roots of the given kinds (default: all of WIDGET_ROOT_KINDS)."""
    builders = [WIDGET_ROOT_KINDS[kind] for kind in roots]
    widget = st.sampled_from(builders).flatmap(lambda build: st.builds(build, texts, _widget_props))
    return st.builds(
        WidgetItem,
        **_base(ids, timestamps, thread_ids),
        widget=widget,
        copy_text=_optional_text,
    )


def generated_image_items(
    ids: st.SearchStrategy[str] = storable_ids,
    timestamps: st.SearchStrategy[datetime] = created_at,
    thread_ids: st.SearchStrategy[str] = storable_ids,
) -> st.SearchStrategy[ThreadItem]:
    """Generated images, with and without an image (data URLs included)."""
    return st.builds(
        GeneratedImageItem,
        **_base(ids, timestamps, thread_ids),
        image=st.none() | st.builds(GeneratedImage, id=_short_text, url=_urls),
    )


def structured_input_items(
    ids: st.SearchStrategy[str] = storable_ids,
    timestamps: st.SearchStrategy[datetime] = created_at,
    thread_ids: st.SearchStrategy[str] = storable_ids,
) -> st.SearchStrategy[ThreadItem]:
    """Structured input requests, pending, answered and skipped."""
    answer = st.none() | st.builds(
        StructuredInputAnswer, values=st.lists(_short_text, max_size=3), skipped=st.booleans()
    )
    inputs = st.lists(
        st.builds(
            StructuredInputMultipleChoice,
            id=_short_text,
            question=texts,
            answer=answer,
            options=st.lists(
                st.builds(StructuredInputMultipleChoiceOption, value=_short_text), max_size=3
            ),
            multiple=st.booleans(),
        )
        | st.builds(
            StructuredInputFreeform,
            id=_short_text,
            question=texts,
            answer=answer,
            description=_optional_text,
        ),
        min_size=1,
        max_size=3,
    )
    return st.builds(
        StructuredInputItem,
        **_base(ids, timestamps, thread_ids),
        status=st.sampled_from(["pending", "answered", "skipped"]),
        inputs=inputs,
    )


def task_items(
    ids: st.SearchStrategy[str] = storable_ids,
    timestamps: st.SearchStrategy[datetime] = created_at,
    thread_ids: st.SearchStrategy[str] = storable_ids,
) -> st.SearchStrategy[ThreadItem]:
    """Task items of every task type."""
    return st.builds(TaskItem, **_base(ids, timestamps, thread_ids), task=tasks)


def workflow_items(
    ids: st.SearchStrategy[str] = storable_ids,
    timestamps: st.SearchStrategy[datetime] = created_at,
    thread_ids: st.SearchStrategy[str] = storable_ids,
) -> st.SearchStrategy[ThreadItem]:
    """Custom and reasoning workflows with tasks and summaries."""
    workflow = st.builds(
        Workflow,
        type=st.sampled_from(["custom", "reasoning"]),
        tasks=st.lists(tasks, max_size=3),
        summary=st.none()
        | st.builds(CustomSummary, title=texts)
        | st.builds(DurationSummary, duration=st.integers(0, 10**6)),
        expanded=st.booleans(),
    )
    return st.builds(WorkflowItem, **_base(ids, timestamps, thread_ids), workflow=workflow)


def end_of_turn_items(
    ids: st.SearchStrategy[str] = storable_ids,
    timestamps: st.SearchStrategy[datetime] = created_at,
    thread_ids: st.SearchStrategy[str] = storable_ids,
) -> st.SearchStrategy[ThreadItem]:
    """End-of-turn markers."""
    return st.builds(EndOfTurnItem, **_base(ids, timestamps, thread_ids))


def hidden_context_items(
    ids: st.SearchStrategy[str] = storable_ids,
    timestamps: st.SearchStrategy[datetime] = created_at,
    thread_ids: st.SearchStrategy[str] = storable_ids,
) -> st.SearchStrategy[ThreadItem]:
    """App hidden context with any JSON content."""
    return st.builds(HiddenContextItem, **_base(ids, timestamps, thread_ids), content=json_values)


def sdk_hidden_context_items(
    ids: st.SearchStrategy[str] = storable_ids,
    timestamps: st.SearchStrategy[datetime] = created_at,
    thread_ids: st.SearchStrategy[str] = storable_ids,
) -> st.SearchStrategy[ThreadItem]:
    """SDK hidden context (string content)."""
    return st.builds(SDKHiddenContextItem, **_base(ids, timestamps, thread_ids), content=texts)


_ITEM_STRATEGIES = (
    user_message_items,
    assistant_message_items,
    client_tool_call_items,
    widget_items,
    generated_image_items,
    structured_input_items,
    task_items,
    workflow_items,
    end_of_turn_items,
    hidden_context_items,
    sdk_hidden_context_items,
)


ItemStrategy = Callable[..., st.SearchStrategy[ThreadItem]]


def item_kinds() -> dict[str, ItemStrategy]:
    """Every kind of ThreadItem the suite round-trips: each item type, and a widget item per
    widget root kind (`widget:Card`, ...). Each value takes (ids, timestamps, thread_ids)."""
    kinds: dict[str, ItemStrategy] = {}
    for make in _ITEM_STRATEGIES:
        if make is widget_items:
            for root in WIDGET_ROOT_KINDS:
                kinds[f"widget:{root}"] = _widget_kind(root)
        else:
            kinds[make.__name__.removesuffix("_items")] = make
    return kinds


def _widget_kind(root: str) -> ItemStrategy:
    def make(
        ids: st.SearchStrategy[str] = storable_ids,
        timestamps: st.SearchStrategy[datetime] = created_at,
        thread_ids: st.SearchStrategy[str] = storable_ids,
    ) -> st.SearchStrategy[ThreadItem]:
        return widget_items(ids, timestamps, thread_ids, roots=(root,))

    return make


def thread_items(
    ids: st.SearchStrategy[str] = storable_ids,
    timestamps: st.SearchStrategy[datetime] = created_at,
    thread_ids: st.SearchStrategy[str] = storable_ids,
) -> st.SearchStrategy[ThreadItem]:
    """Any of the eleven ThreadItem types."""
    return st.one_of([make(ids, timestamps, thread_ids) for make in _ITEM_STRATEGIES])


def thread_items_sharing_timestamps(
    min_size: int = 2, max_size: int = 12
) -> st.SearchStrategy[list[ThreadItem]]:
    """Lists of items with distinct ids, most of them sharing one or two `created_at` values."""

    @st.composite
    def build(draw: st.DrawFn) -> list[ThreadItem]:
        stamps = draw(st.lists(created_at, min_size=1, max_size=2))
        count = draw(st.integers(min_size, max_size))
        ids = draw(st.lists(storable_ids, min_size=count, max_size=count, unique=True))
        return [draw(thread_items(st.just(i), st.sampled_from(stamps))) for i in ids]

    return build()
