"""A `ThreadItemConverter` that sends attachment contents and resolved tags to the model.

Upstream's converter raises NotImplementedError for attachments and tags.
`AttachmentAwareConverter` reads attachment bytes through an `AttachmentContentSource` and never
fails a turn because of an attachment: anything it cannot include becomes a short note naming
the file. It knows which model API the input is for: the Responses API takes files by URL,
Chat Completions (openai-agents' `OpenAIChatCompletionsModel`, LiteLLM) only inline.
"""

from __future__ import annotations

import asyncio
import base64
import codecs
import json
import logging
from collections.abc import Awaitable, Sequence
from typing import Any, Literal, TypeVar

from agents import (
    Agent,
    Model,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    TResponseInputItem,
)
from chatkit.agents import ThreadItemConverter
from chatkit.store import NotFoundError
from chatkit.types import (
    AssistantMessageItem,
    Attachment,
    GeneratedImageItem,
    HiddenContextItem,
    ImageAttachment,
    UserMessageItem,
    UserMessageTagContent,
    UserMessageTextContent,
)
from openai.types.responses import (
    EasyInputMessageParam,
    ResponseInputContentParam,
    ResponseInputFileParam,
    ResponseInputImageParam,
    ResponseInputTextParam,
)
from openai.types.responses.response_input_item_param import Message
from pydantic import AnyUrl

from .._images import sniff_image_type
from ..attachments import AttachmentContentSource
from ..attachments.generated import generated_image_attachment_id
from .tags import TagKey, TagResolverRegistry, default_tag_key, default_tag_text

logger = logging.getLogger("chatkit_kit.converters")

AttachmentKind = Literal["image", "pdf", "text", "other"]
ImageDetail = Literal["auto", "low", "high"]
ModelApi = Literal["responses", "chat_completions"]
"""The API the converted input is sent to; Chat Completions cannot take a file by URL."""

_T = TypeVar("_T")

MENTIONS_HEADER = (
    "# User-provided context for @-mentions\n"
    "- When referencing resolved entities, use their canonical names **without** '@'.\n"
    "- The '@' form appears only in user text and should not be echoed."
)
"""The header of the @-mention context message (identical to upstream's)."""

MODEL_IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
"""Image types the Responses API accepts as `input_image`."""

TEXT_MIME_TYPES = frozenset(
    {
        "application/json",
        "application/ld+json",
        "application/x-ndjson",
        "application/jsonl",
        "application/xml",
        "application/yaml",
        "application/x-yaml",
        "application/toml",
        "application/csv",
        "application/sql",
        "application/graphql",
        "application/javascript",
        "application/x-javascript",
        "application/typescript",
        "application/x-python",
        "application/x-python-code",
        "application/x-sh",
        "application/x-shellscript",
        "application/x-httpd-php",
        "application/x-tex",
        "application/x-latex",
        "image/svg+xml",
    }
)
"""MIME types (besides `text/*`, `*+json` and `*+xml`) sent inline as text."""

TEXT_EXTENSIONS = frozenset(
    (
        "txt text md markdown rst adoc csv tsv json jsonl ndjson yaml yml toml ini cfg conf env "
        "xml html htm css scss less svg log sql graphql gql py pyi ipynb js mjs cjs jsx ts tsx "
        "java kt kts scala go rs rb php pl lua r swift m mm c h cc cpp cxx hpp hh cs fs vb "
        "sh bash zsh fish ps1 bat cmd dockerfile makefile gradle properties tex bib vue svelte "
        "dart ex exs erl hs clj elm jl nim zig proto tf hcl diff patch"
    ).split()
)
"""File name extensions treated as text when the declared type is generic or missing."""

_IMAGE_EXTENSIONS = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
}
_GENERIC_TYPES = frozenset(
    {"", "application/octet-stream", "binary/octet-stream", "application/unknown"}
)


class AttachmentAwareConverter(ThreadItemConverter):
    """Converts thread items to model input, including attachment contents and tags.

    Build one per request: `AttachmentAwareConverter(source, context, tags=registry)`.

    Attachments become content parts of the user message they belong to:

    * images (PNG, JPEG, GIF, WebP): `input_image` with an inline `data:` URL up to
      `image_inline_max_bytes`, otherwise with a download URL from the source;
    * PDFs: `input_file` with inline `file_data` (a `data:` URL) and `filename` up to
      `file_inline_max_bytes`, otherwise with a `file_url` for the Responses API, or a note for
      Chat Completions, which takes files only inline;
    * text-like files (`text/*`, JSON, CSV, Markdown, XML, YAML, source code): `input_text`
      with the decoded text, cut at `text_max_bytes` with an explicit truncation note;
    * anything else, and any attachment whose bytes are missing, fail verification or are too
      large with no download URL: an `input_text` note naming the file.

    With `prefer_urls=True`, images (and, for the Responses API, PDFs) are sent by download URL
    whenever the source can issue one (after `verify_attachment`), without reading their bytes.
    The attachments of one message are fetched concurrently, at most `max_concurrency` at a
    time per converter.

    `model_api` says where the input goes: `"responses"` (default) or `"chat_completions"`, or
    an openai-agents `Model` to infer it from (see `model_api_of`). For Chat Completions no
    `input_file` part ever carries a `file_url`, which openai-agents' Chat Completions converter
    rejects.

    Tags are rendered through `tags` (a `TagResolverRegistry`); without one every tag gets the
    default rendering. Non-string `HiddenContextItem` content is sent as JSON. Earlier assistant
    messages are sent as plain text, which both model APIs accept.
    """

    def __init__(
        self,
        source: AttachmentContentSource | None,
        context: Any,
        *,
        tags: TagResolverRegistry | None = None,
        image_inline_max_bytes: int = 2 * 1024 * 1024,
        file_inline_max_bytes: int = 8 * 1024 * 1024,
        text_max_bytes: int = 64 * 1024,
        url_expires_in: int = 300,
        prefer_urls: bool = False,
        image_detail: ImageDetail = "auto",
        max_concurrency: int = 4,
        model_api: ModelApi | Model = "responses",
    ) -> None:
        for name, value in (
            ("image_inline_max_bytes", image_inline_max_bytes),
            ("file_inline_max_bytes", file_inline_max_bytes),
            ("text_max_bytes", text_max_bytes),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an int >= 0, got {value!r}")
        if isinstance(url_expires_in, bool) or not isinstance(url_expires_in, int):
            raise ValueError(f"url_expires_in must be an int of seconds, got {url_expires_in!r}")
        if url_expires_in < 1:
            raise ValueError(f"url_expires_in must be at least 1 second, got {url_expires_in}")
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int):
            raise ValueError(f"max_concurrency must be an int, got {max_concurrency!r}")
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}")
        if image_detail not in ("auto", "low", "high"):
            raise ValueError(f"image_detail must be 'auto', 'low' or 'high', got {image_detail!r}")
        if isinstance(model_api, Model):
            model_api = model_api_of(model_api)
        if model_api not in ("responses", "chat_completions"):
            raise ValueError(
                "model_api must be 'responses', 'chat_completions' or an openai-agents Model, "
                f"got {model_api!r}"
            )
        self.source = source
        self.context = context
        self.model_api: ModelApi = model_api
        self.tags = tags
        self.image_inline_max_bytes = image_inline_max_bytes
        self.file_inline_max_bytes = file_inline_max_bytes
        self.text_max_bytes = text_max_bytes
        self.url_expires_in = url_expires_in
        self.prefer_urls = prefer_urls
        self.image_detail: ImageDetail = image_detail
        self.max_concurrency = max_concurrency
        self._semaphore: asyncio.Semaphore | None = None

    # Classification and rendering hooks (override to customize)

    def attachment_kind(self, attachment: Attachment) -> AttachmentKind:
        """Classify an attachment by MIME type, or by file extension when the type is generic."""
        mime = _base_mime(attachment.mime_type)
        if mime in _GENERIC_TYPES:
            mime = _mime_from_extension(attachment.name)
        if mime in MODEL_IMAGE_TYPES:
            return "image"
        if mime == "application/pdf":
            return "pdf"
        if (
            mime.startswith("text/")
            or mime in TEXT_MIME_TYPES
            or mime.endswith(("+json", "+xml"))
            or (mime in _GENERIC_TYPES and _extension(attachment.name) in TEXT_EXTENSIONS)
        ):
            return "text"
        return "other"

    def attachment_text(
        self, attachment: Attachment, text: str, *, truncated: bool, total_bytes: int
    ) -> str:
        """The `input_text` for a text-like attachment (`text` is already cut when truncated)."""
        name = json.dumps(attachment.name, ensure_ascii=False)
        mime = json.dumps(attachment.mime_type, ensure_ascii=False)
        body = text
        if truncated:
            body += (
                f"\n[Truncated: only the first {self.text_max_bytes} of {total_bytes} bytes "
                f"of {name} are included.]"
            )
        return f"<attachment name={name} type={mime}>\n{body}\n</attachment>"

    def attachment_note(self, attachment: Attachment, reason: str) -> str:
        """The `input_text` that stands in for an attachment that cannot be included."""
        name = json.dumps(attachment.name, ensure_ascii=False)
        return f"[Attachment {name} ({attachment.mime_type}) is not included: {reason}.]"

    # ThreadItemConverter hooks

    async def attachment_to_message_content(
        self, attachment: Attachment
    ) -> ResponseInputContentParam:
        """Convert one attachment; never raises for missing, invalid or unsupported files."""
        async with self._limit():
            return await self._convert_attachment(attachment)

    async def tag_to_message_content(self, tag: UserMessageTagContent) -> ResponseInputContentParam:
        """Render a tag through the registry, or with the default rendering."""
        if self.tags is not None:
            return await self.tags.render(tag, self.context)
        return ResponseInputTextParam(
            type="input_text", text=default_tag_text(tag, default_tag_key(tag))
        )

    async def hidden_context_to_input(
        self, item: HiddenContextItem
    ) -> TResponseInputItem | list[TResponseInputItem] | None:
        """Like upstream, and sends non-string content as JSON instead of raising."""
        if isinstance(item.content, str):
            return await super().hidden_context_to_input(item)
        content = json.dumps(item.content, ensure_ascii=False, default=str)
        return await super().hidden_context_to_input(item.model_copy(update={"content": content}))

    async def assistant_message_to_input(
        self, item: AssistantMessageItem
    ) -> TResponseInputItem | list[TResponseInputItem] | None:
        """An earlier answer as `{"role": "assistant", "content": "<text>"}`, or None if empty.

        Upstream sends `output_text` parts dumped with `logprobs: None`, which openai-agents'
        Chat Completions converter rejects (`UserError: Unknown content`), failing every second
        turn on a Chat Completions model. Plain text content is accepted by both model APIs.
        Several content parts are joined with a blank line.
        """
        text = "\n\n".join(part.text for part in item.content if part.text)
        if not text:
            return None
        return EasyInputMessageParam(type="message", role="assistant", content=text)

    async def generated_image_to_input(
        self, item: GeneratedImageItem
    ) -> TResponseInputItem | list[TResponseInputItem] | None:
        """Like upstream; an image stored as an attachment is sent as its bytes (or a note).

        Its URL (`generated_image_url`) is for the owner's browser, which the model cannot
        fetch, so it is read through the source like an image attachment.
        """
        attachment_id = generated_image_attachment_id(item.image.url) if item.image else None
        if item.image is None or attachment_id is None:
            return await super().generated_image_to_input(item)
        stand_in = ImageAttachment(
            id=attachment_id,
            name=f"{item.image.id or 'generated-image'}.png",
            mime_type="image/png",
            preview_url=AnyUrl(item.image.url),
        )
        part = await self.attachment_to_message_content(stand_in)
        return Message(
            type="message",
            role="user",
            content=[
                ResponseInputTextParam(
                    type="input_text", text="The following image was generated by the agent."
                ),
                *self._for_model_api([part]),
            ],
        )

    async def user_message_to_input(
        self, item: UserMessageItem, is_last_message: bool = True
    ) -> TResponseInputItem | list[TResponseInputItem] | None:
        """Upstream's message layout, with attachments and tags converted concurrently.

        Output: the user message (typed text with tags as `@text`, then one part per
        attachment), the quoted-text message when this is the last item, then the @-mention
        context message when there are tags (de-duplicated by entity type and id).
        """
        text_parts: list[str] = []
        tags: list[UserMessageTagContent] = []
        for part in item.content:
            if isinstance(part, UserMessageTextContent):
                text_parts.append(part.text)
            elif isinstance(part, UserMessageTagContent):
                text_parts.append(f"@{part.text}")
                tags.append(part)
        unique_tags = _dedupe_tags(tags, self.tags.key if self.tags else default_tag_key)

        attachment_parts, tag_parts = await asyncio.gather(
            _gather_all([self.attachment_to_message_content(a) for a in item.attachments]),
            _gather_all([self.tag_to_message_content(t) for t in unique_tags]),
        )
        # Overridden hooks and tag resolvers may return parts of their own: check those too.
        attachment_parts = self._for_model_api(attachment_parts)
        tag_parts = self._for_model_api(tag_parts)

        output: list[TResponseInputItem] = [
            Message(
                role="user",
                type="message",
                content=[
                    ResponseInputTextParam(type="input_text", text="".join(text_parts)),
                    *attachment_parts,
                ],
            )
        ]
        if item.quoted_text and is_last_message:
            output.append(
                Message(
                    role="user",
                    type="message",
                    content=[
                        ResponseInputTextParam(
                            type="input_text",
                            text="The user is referring to this in particular: \n"
                            + item.quoted_text,
                        )
                    ],
                )
            )
        if tag_parts:
            output.append(
                Message(
                    role="user",
                    type="message",
                    content=[
                        ResponseInputTextParam(type="input_text", text=MENTIONS_HEADER),
                        *tag_parts,
                    ],
                )
            )
        return output

    # Internals

    @property
    def _file_urls(self) -> bool:
        """Whether `input_file` may carry a `file_url` (Responses API only)."""
        return self.model_api == "responses"

    def _for_model_api(
        self, parts: list[ResponseInputContentParam]
    ) -> list[ResponseInputContentParam]:
        """For Chat Completions, a file part with only a `file_url` becomes a note."""
        if self._file_urls:
            return parts
        return [
            ResponseInputTextParam(type="input_text", text=_file_url_note(part))
            if part.get("type") == "input_file"
            and not part.get("file_data")
            and not part.get("file_id")
            else part
            for part in parts
        ]

    def _limit(self) -> asyncio.Semaphore:
        # Created lazily so the converter can be built outside a running event loop.
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.max_concurrency)
        return self._semaphore

    def _note(self, attachment: Attachment, reason: str) -> ResponseInputTextParam:
        return ResponseInputTextParam(
            type="input_text", text=self.attachment_note(attachment, reason)
        )

    async def _convert_attachment(self, attachment: Attachment) -> ResponseInputContentParam:
        kind = self.attachment_kind(attachment)
        if kind == "other":
            if isinstance(attachment, ImageAttachment) or attachment.mime_type.startswith("image/"):
                return self._note(attachment, "this image type is not supported by the model")
            return self._note(attachment, "this file type cannot be sent to the model")
        if self.source is None:
            return self._note(attachment, "no attachment backend is configured")
        try:
            if self.prefer_urls and (kind == "image" or (kind == "pdf" and self._file_urls)):
                verified = await self.source.verify_attachment(attachment, self.context)
                url = await self._safe_download_url(verified)
                if url is not None:
                    return self._url_part(attachment, kind, url)
            data = await self.source.read_attachment_bytes(attachment, self.context)
        except NotFoundError:
            logger.warning(
                "attachment %r (%s) has no stored bytes; sending a note instead",
                attachment.id,
                attachment.mime_type,
            )
            return self._note(attachment, "its contents are missing")
        except Exception as exc:
            logger.warning(
                "attachment %r (%s) failed verification (%s: %s); sending a note instead",
                attachment.id,
                attachment.mime_type,
                type(exc).__name__,
                exc,
            )
            return self._note(attachment, "its contents could not be verified")

        if kind == "text":
            return self._text_part(attachment, data)
        # The model API rejects the whole request for an empty or undecodable image or PDF,
        # so check the bytes here rather than fail the turn.
        if not data:
            return self._note(attachment, "the file is empty")
        media_type = sniff_image_type(data) if kind == "image" else None
        if kind == "image" and media_type is None:
            return self._note(attachment, "its contents are not a PNG, JPEG, GIF or WebP image")
        if kind == "pdf" and b"%PDF-" not in data[:1024]:
            return self._note(attachment, "its contents are not a PDF document")
        limit = self.image_inline_max_bytes if kind == "image" else self.file_inline_max_bytes
        if len(data) <= limit:
            return self._inline_part(attachment, kind, data, media_type)
        if kind == "pdf" and not self._file_urls:
            return self._note(
                attachment,
                f"it is {len(data)} bytes, over the {limit} byte inline limit, and "
                "Chat Completions models take files only inline",
            )
        url = await self._safe_download_url(attachment)
        if url is not None:
            return self._url_part(attachment, kind, url)
        return self._note(
            attachment,
            f"it is {len(data)} bytes, over the {limit} byte inline limit, "
            "and no download URL is available",
        )

    async def _safe_download_url(self, attachment: Attachment) -> str | None:
        """The source's download URL, or None when it has none or fails to issue one."""
        assert self.source is not None
        try:
            return await self.source.attachment_download_url(
                attachment, self.context, expires_in=self.url_expires_in
            )
        except Exception as exc:
            logger.warning(
                "could not get a download URL for attachment %r (%s: %s)",
                attachment.id,
                type(exc).__name__,
                exc,
            )
            return None

    def _inline_part(
        self, attachment: Attachment, kind: AttachmentKind, data: bytes, media_type: str | None
    ) -> ResponseInputContentParam:
        media_type = media_type or "application/pdf"
        data_url = f"data:{media_type};base64,{base64.b64encode(data).decode()}"
        if kind == "image":
            return ResponseInputImageParam(
                type="input_image", detail=self.image_detail, image_url=data_url
            )
        return ResponseInputFileParam(
            type="input_file", filename=attachment.name, file_data=data_url
        )

    def _url_part(
        self, attachment: Attachment, kind: AttachmentKind, url: str
    ) -> ResponseInputContentParam:
        if kind == "image":
            return ResponseInputImageParam(
                type="input_image", detail=self.image_detail, image_url=url
            )
        return ResponseInputFileParam(type="input_file", file_url=url)

    def _text_part(self, attachment: Attachment, data: bytes) -> ResponseInputContentParam:
        total = len(data)
        truncated = total > self.text_max_bytes
        text = _decode_text(data[: self.text_max_bytes], attachment.mime_type, final=not truncated)
        if text is None:
            return self._note(attachment, "its contents are not text")
        return ResponseInputTextParam(
            type="input_text",
            text=self.attachment_text(attachment, text, truncated=truncated, total_bytes=total),
        )


def model_api_of(model: Model | Agent[Any] | str | None) -> ModelApi:
    """The model API an openai-agents model (or an `Agent`'s model) is called through.

    `OpenAIResponsesModel` (and subclasses) is `"responses"`; `OpenAIChatCompletionsModel` and
    `LitellmModel` are `"chat_completions"`, as is a model with an `api` attribute saying so
    (`AnyLLMModel(api=...)`). A model name (`Agent(model="gpt-4.1")`, or None for the default
    model) is resolved the way openai-agents' default provider does: `"litellm/..."` is Chat
    Completions, other names use the OpenAI default API (`set_default_openai_api`). Anything
    else raises ValueError: pass `model_api=` to the converter instead.
    """
    if isinstance(model, Agent):
        model = model.model
    if model is None or isinstance(model, str):
        prefix = model.split("/", 1)[0] if model and "/" in model else None
        if prefix == "litellm":
            return "chat_completions"
        if prefix in (None, "openai"):
            return _openai_default_api()
        raise ValueError(
            f"cannot tell which API the model {model!r} is called through; pass "
            "model_api='responses' or model_api='chat_completions'"
        )
    if isinstance(model, OpenAIResponsesModel):
        return "responses"
    if isinstance(model, OpenAIChatCompletionsModel):
        return "chat_completions"
    if any(f"{cls.__module__}.{cls.__qualname__}" == _LITELLM_MODEL for cls in type(model).__mro__):
        return "chat_completions"
    api = getattr(model, "api", None)
    if api in ("responses", "chat_completions"):
        return api  # type: ignore[no-any-return]
    raise ValueError(
        f"cannot tell which API a {type(model).__name__} is called through; pass "
        "model_api='responses' or model_api='chat_completions'"
    )


# By name: importing the class needs the `litellm` package.
_LITELLM_MODEL = "agents.extensions.models.litellm_model.LitellmModel"


def _openai_default_api() -> ModelApi:
    try:
        from agents.models._openai_shared import get_use_responses_by_default
    except ImportError:  # pragma: no cover - a future openai-agents moved it
        return "responses"
    return "responses" if get_use_responses_by_default() else "chat_completions"


def _file_url_note(part: ResponseInputContentParam) -> str:
    filename = part.get("filename")
    what = f"File {json.dumps(filename, ensure_ascii=False)}" if filename else "A file"
    return (
        f"[{what} is not included: it is given by URL, and Chat Completions models take files "
        "only inline.]"
    )


async def _gather_all(awaitables: Sequence[Awaitable[_T]]) -> list[_T]:
    if not awaitables:
        return []
    return list(await asyncio.gather(*awaitables))


def _dedupe_tags(tags: list[UserMessageTagContent], key: TagKey) -> list[UserMessageTagContent]:
    seen: set[tuple[str | None, str]] = set()
    unique: list[UserMessageTagContent] = []
    for tag in tags:
        marker = (key(tag), tag.id)
        if marker not in seen:
            seen.add(marker)
            unique.append(tag)
    return unique


def _base_mime(mime_type: str) -> str:
    return mime_type.split(";", 1)[0].strip().lower()


def _charset(mime_type: str) -> str | None:
    for param in mime_type.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"') or None
    return None


def _extension(name: str) -> str:
    base = name.rsplit("/", 1)[-1].lower()
    if "." not in base:
        return base  # "Dockerfile", "Makefile"
    return base.rsplit(".", 1)[-1]


def _mime_from_extension(name: str) -> str:
    ext = _extension(name)
    if ext in _IMAGE_EXTENSIONS:
        return _IMAGE_EXTENSIONS[ext]
    if ext == "pdf":
        return "application/pdf"
    return ""


def _decode_text(data: bytes, mime_type: str, *, final: bool) -> str | None:
    """Decode text bytes; None if they look binary. A cut multi-byte tail is dropped."""
    if b"\x00" in data:
        return None
    encoding = _charset(mime_type) or "utf-8"
    try:
        codecs.lookup(encoding)
    except LookupError:
        encoding = "utf-8"
    if encoding.replace("_", "-").lower() in ("utf-8", "utf8"):
        encoding = "utf-8-sig"
    try:
        return codecs.getincrementaldecoder(encoding)(errors="strict").decode(data, final=final)
    except UnicodeDecodeError:
        return codecs.getincrementaldecoder(encoding)(errors="replace").decode(data, final=final)
