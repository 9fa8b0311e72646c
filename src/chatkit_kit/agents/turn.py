"""`agent_turn`: answer one ChatKit turn with an openai-agents Agent.

What every app's `respond` otherwise re-types: load the recent history in whole turns,
convert it for the agent's model API (attachments, tags, earlier answers), run the agent
streamed, translate its events with upstream's `stream_agent_response`, give every streamed
item a unique id, and turn guardrail tripwires and non-retryable failures into `ErrorEvent`s
whose `allow_retry` tells the truth.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import openai
from agents import (
    Agent,
    InputGuardrailTripwireTriggered,
    MaxTurnsExceeded,
    OutputGuardrailTripwireTriggered,
    RunConfig,
    RunHooks,
    Runner,
    UserError,
)
from agents.run import DEFAULT_MAX_TURNS
from chatkit.agents import (
    AgentContext,
    ResponseStreamConverter,
    ThreadItemConverter,
    stream_agent_response,
)
from chatkit.errors import ErrorCode, StreamError
from chatkit.store import AttachmentStore, Store
from chatkit.types import (
    ErrorEvent,
    ThreadItem,
    ThreadMetadata,
    ThreadStreamEvent,
    UserMessageItem,
)

from ..attachments import AttachmentContentSource, BlobAttachmentStore
from ..converters.attachments import AttachmentAwareConverter, ModelApi, model_api_of
from ..converters.history import estimate_item_tokens, load_history
from ..converters.tags import TagResolverRegistry
from .images import AttachmentImageConverter
from .item_ids import unique_item_ids

__all__ = [
    "INPUT_GUARDRAIL_MESSAGE",
    "OUTPUT_GUARDRAIL_MESSAGE",
    "GuardrailTripwire",
    "HistoryWindow",
    "agent_turn",
]

logger = logging.getLogger("chatkit_kit.agents")

TContext = TypeVar("TContext")

GuardrailTripwire = InputGuardrailTripwireTriggered | OutputGuardrailTripwireTriggered

INPUT_GUARDRAIL_MESSAGE = "Sorry, I can't help with that request."
"""The error shown when an input guardrail trips (no retry: the same input trips it again)."""

OUTPUT_GUARDRAIL_MESSAGE = "Sorry, I couldn't give an answer I'm allowed to share. Please retry."
"""The error shown when an output guardrail trips (retry offered: another answer may pass)."""


@dataclass(frozen=True)
class HistoryWindow:
    """How much of the thread `agent_turn` sends: the newest whole turns within both limits.

    See `chatkit_kit.converters.load_history`.
    """

    max_items: int = 50
    max_tokens: int | None = None
    estimate_tokens: Callable[[ThreadItem], int] = estimate_item_tokens


_NO_RETRY: tuple[type[Exception], ...] = (
    UserError,
    MaxTurnsExceeded,
    openai.BadRequestError,
    openai.AuthenticationError,
    openai.PermissionDeniedError,
    openai.NotFoundError,
    openai.UnprocessableEntityError,
)
"""Failures a retry with the same input cannot fix."""


def _default_guardrail_message(exc: GuardrailTripwire) -> str:
    if isinstance(exc, InputGuardrailTripwireTriggered):
        return INPUT_GUARDRAIL_MESSAGE
    return OUTPUT_GUARDRAIL_MESSAGE


async def agent_turn(
    agent: Agent[Any],
    thread: ThreadMetadata,
    input_user_message: UserMessageItem | None,
    context: TContext,
    *,
    store: Store[TContext],
    attachments: AttachmentStore[Any] | AttachmentContentSource | None = None,
    converter: ThreadItemConverter | None = None,
    tags: TagResolverRegistry | None = None,
    model_api: ModelApi | None = None,
    history: HistoryWindow | Sequence[ThreadItem] = HistoryWindow(),
    agent_context: AgentContext[TContext] | None = None,
    run_config: RunConfig | None = None,
    max_turns: int = DEFAULT_MAX_TURNS,
    hooks: RunHooks[Any] | None = None,
    stream_converter: ResponseStreamConverter | None = None,
    generated_images: Literal["inline", "attachments"] = "inline",
    guardrail_message: Callable[[GuardrailTripwire], str] = _default_guardrail_message,
    check_item_ids: bool = True,
) -> AsyncIterator[ThreadStreamEvent]:
    """Answer `input_user_message` with `agent`; return this from `ChatKitServer.respond`.

    ```python
    async def respond(self, thread, input_user_message, context):
        async for event in agent_turn(agent, thread, input_user_message, context,
                                      store=self.store, attachments=self.attachment_store):
            yield event
    ```

    * History: the newest whole turns of the thread within `history` (a `HistoryWindow`), or
      the items you pass. The user message being answered is already stored by ChatKit.
    * Conversion: `converter`, by default an `AttachmentAwareConverter` over `attachments`
      (an `AttachmentContentSource`, such as our S3 and direct-upload backends; anything else
      means attachments become notes) with `tags`, for `model_api` (inferred from the agent's
      or `run_config`'s model; Chat Completions when it cannot be told, which both APIs take).
    * Run: `Runner.run_streamed(agent, input, context=agent_context, ...)`; the agent's tools
      receive the `AgentContext` (pass your own subclass instance as `agent_context`).
    * Events: upstream's `stream_agent_response` (with `stream_converter`), then
      `unique_item_ids`, so Chat Completions answers (id `__fake_id__`) never overwrite each
      other.
    * Errors: a tripped input guardrail ends the turn with `ErrorEvent(allow_retry=False)`,
      an output guardrail with `allow_retry=True` (the message from `guardrail_message`); the
      items it streamed are removed. Failures a retry cannot fix (`UserError`,
      `MaxTurnsExceeded`, a 400/401/403/404/422 from the API) are logged and end with
      `allow_retry=False`; others (timeouts, 429, 5xx) propagate and ChatKit offers a retry.
    * Generated images: `"inline"` keeps upstream's `data:` URLs in the item;
      `"attachments"` stores them through `attachments` (a `BlobAttachmentStore`) with
      `AttachmentImageConverter`, so the row holds a URL and deleting the thread or erasing the
      owner removes the bytes.
    * Cancellation (the client stopped the stream): the run is cancelled; ChatKit saves the
      partly streamed answer under the id the client saw, as upstream does.
    """
    if agent_context is None:
        agent_context = AgentContext(thread=thread, store=store, request_context=context)
    if isinstance(history, HistoryWindow):
        items = await load_history(
            store,
            thread.id,
            context,
            max_items=history.max_items,
            max_tokens=history.max_tokens,
            estimate_tokens=history.estimate_tokens,
        )
    else:
        items = list(history)
    if converter is None:
        source = attachments if isinstance(attachments, AttachmentContentSource) else None
        converter = AttachmentAwareConverter(
            source, context, tags=tags, model_api=model_api or _model_api(agent, run_config)
        )
    model_input = await converter.to_agent_input(items)
    if generated_images == "attachments":
        if stream_converter is not None:
            raise ValueError("pass either stream_converter or generated_images='attachments'")
        if not isinstance(attachments, BlobAttachmentStore):
            raise ValueError(
                "generated_images='attachments' needs attachments= a chatkit-kit attachment "
                f"backend (S3AttachmentStore, DirectUploadAttachmentStore), got {attachments!r}"
            )
        stream_converter = AttachmentImageConverter(attachments, thread, context)
    elif generated_images != "inline":
        raise ValueError(
            f"generated_images must be 'inline' or 'attachments', got {generated_images!r}"
        )

    result = Runner.run_streamed(
        agent,
        model_input,
        context=agent_context,
        max_turns=max_turns,
        hooks=hooks,
        run_config=run_config,
    )
    events = stream_agent_response(
        agent_context, result, converter=stream_converter or ResponseStreamConverter()
    )
    try:
        async for event in unique_item_ids(
            events, store=store, thread=thread, context=context, check_thread=check_item_ids
        ):
            yield event
    except InputGuardrailTripwireTriggered as exc:
        yield ErrorEvent(code="custom", message=guardrail_message(exc), allow_retry=False)
    except OutputGuardrailTripwireTriggered as exc:
        yield ErrorEvent(code="custom", message=guardrail_message(exc), allow_retry=True)
    except _NO_RETRY as exc:
        logger.exception(
            "agent turn of thread %s failed (%s); no retry offered", thread.id, type(exc).__name__
        )
        raise StreamError(ErrorCode.STREAM_ERROR, allow_retry=False) from exc
    finally:
        if not result.is_complete:
            result.cancel()


def _model_api(agent: Agent[Any], run_config: RunConfig | None) -> ModelApi:
    model = run_config.model if run_config is not None and run_config.model else agent
    try:
        return model_api_of(model)
    except ValueError:
        return "chat_completions"
