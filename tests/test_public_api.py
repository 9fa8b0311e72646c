"""Every public `__all__` is pinned: a name added, removed or renamed fails here first.

Changing the public API is fine, on purpose: update the names below, and CHANGELOG.md (a removed
or renamed name is a breaking change; keep a deprecated alias where users may depend on it).
"""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import chatkit_kit

# Each module's `__all__`, in order, as whitespace-separated names.
PINNED: dict[str, str] = {
    "chatkit_kit": "__version__",
    "chatkit_kit.agents": """
        FAKE_RESPONSES_ID INPUT_GUARDRAIL_MESSAGE OUTPUT_GUARDRAIL_MESSAGE AttachmentImageConverter
        GuardrailTripwire HistoryWindow agent_turn unique_item_ids
    """,
    "chatkit_kit.agents.item_ids": "FAKE_RESPONSES_ID unique_item_ids",
    "chatkit_kit.agents.turn": """
        INPUT_GUARDRAIL_MESSAGE OUTPUT_GUARDRAIL_MESSAGE GuardrailTripwire HistoryWindow agent_turn
    """,
    "chatkit_kit.agents.images": "AttachmentImageConverter",
    "chatkit_kit.asgi": """
        DEFAULT_KEEPALIVE DEFAULT_MAX_BODY_SIZE CORSConfig ChatKitEndpoint ClientRequestError
        UploadRoutesProvider chatkit_app chatkit_routes
    """,
    "chatkit_kit.attachments": """
        DEFAULT_ALLOWED_MIME_TYPES DEFAULT_IMAGE_MIME_TYPES METADATA_KEY AttachmentContentSource
        AttachmentError AttachmentPolicyError AttachmentPresenter AttachmentTooLargeError
        AttachmentTypeNotAllowedError AttachmentVerificationError BlobAttachmentStore BlobInfo
        BlobNotFoundError BlobStorage DirectUploadAttachmentStore InvalidUploadError
        LocalBlobStorage OwnerBlobStorage S3AttachmentStore S3BlobStorage StoreWithAttachments
        ThreadDeleteListener UploadPolicy
    """,
    "chatkit_kit.attachments.generated": """
        GENERATED_IMAGE_MARKER generated_image_attachment_id generated_image_url
    """,
    "chatkit_kit.cli": "build_parser main",
    "chatkit_kit.converters": """
        ATTACHMENT_TOKEN_ESTIMATE MENTIONS_HEADER MODEL_IMAGE_TYPES TEXT_EXTENSIONS TEXT_MIME_TYPES
        AttachmentAwareConverter AttachmentContentSource AttachmentKind ModelApi TagRendering
        TagResolver TagResolverRegistry default_tag_key default_tag_text estimate_item_tokens
        load_history model_api_of
    """,
    "chatkit_kit.demo.app": "DEMO_USER DemoConfig DemoContext DemoServer build_app demo_context",
    "chatkit_kit.encryption": """
        DataKeyCache DataKeyDestroyedError DecryptionError EncryptedBlobStorage EncryptedStore
        EnvelopeCodec KMSKeyProvider KeyProvider KeyProviderError LocalKeyProvider OwnerKeys
        RewriteReport encrypt_existing rewrap_blobs rotate_data_key rotate_kek
    """,
    "chatkit_kit.errors": """
        AttachmentStorageError AttachmentStorageUnavailableError ChatKitKitError
        DataKeyDestroyedError DatabaseConfigurationError DatabaseError DatabaseTimeoutError
        DatabaseUnavailableError DeadlockError DecryptionError EncryptedPayloadError
        KeyProviderError MissingDependencyError SchemaVersionError
    """,
    "chatkit_kit.stores": """
        DEFAULT_BATCH_SIZE DEFAULT_STATEMENT_TIMEOUT_SECONDS DEFAULT_TABLE_PREFIX MAX_BATCH_SIZE
        MAX_ID_BYTES MAX_ID_LENGTH
        MAX_OWNER_BYTES MAX_PAGE_LIMIT SCHEMA_VERSION AsyncpgStore AttachmentBytesEraser
        AttachmentIndex DataKeyTable DatabaseConfigurationError DatabaseError DatabaseTimeoutError
        DatabaseUnavailableError ForwardingStore JSONCodec MemoryStore OwnerResolver
        OwnerScopedStore PayloadKind RetentionStore SQLAlchemyStore SchemaVersionError StoreCodec
        StoredAttachment StoredPayload WrappedDataKey check_id check_owner check_table_prefix
        default_owner is_storable_id
        migration_script redact_database_url resolve_database_url sort_key
    """,
    "chatkit_kit.stores.sql.dialects": """
        MySQLDialect PostgreSQLDialect SQLDialect SQLiteDialect URLDriver dialect_for_backend
        dialect_for_url dialect_named register_dialect registered_dialects resolve_database_url
        sql_literal url_forms
    """,
    "chatkit_kit.testing": """
        RULES APIFailure AttachmentIndexConformance Capabilities ChatKitHTTPError ChatKitTestClient
        ConformanceContext ConformanceFailure ConformanceReport GeneratedImage NotSupported
        RetentionConformance Rule RuleResult ScriptStep ScriptedOpenAI StoreConformance StreamedTurn
        StrictStoreConformance Text ToolCall parse_sse requests run_conformance strategies
    """,
    "chatkit_kit.testing.client": "ChatKitHTTPError ChatKitTestClient StreamedTurn parse_sse",
    "chatkit_kit.testing.conformance": """
        PROFILES PROFILE_ENV RULES AttachmentIndexConformance Capabilities ConformanceContext
        ConformanceFailure ConformanceReport NotSupported Rule RuleResult StoreConformance
        StrictStoreConformance run_conformance
    """,
    "chatkit_kit.testing.models": """
        APIFailure GeneratedImage ScriptStep ScriptedOpenAI Text ToolCall
    """,
    "chatkit_kit.testing.retention": "RetentionConformance",
    "chatkit_kit.testing.requests": """
        ChatKitRequest MessageOptions Tag add_client_tool_output add_structured_input
        add_user_message create_attachment create_thread custom_action delete_attachment
        delete_thread feedback get_thread list_items list_threads retry_after_item
        sync_custom_action transcribe update_thread user_input
    """,
    "chatkit_kit.testing.strategies": """
        HOSTILE_IDS WIDGET_ROOT_KINDS assistant_message_items attachments client_tool_call_items
        created_at end_of_turn_items file_attachments generated_image_items hidden_context_items
        image_attachments item_kinds json_values sdk_hidden_context_items server_created_at
        storable_ids structured_input_items task_items tasks texts thread_items
        thread_items_sharing_timestamps thread_metadata thread_statuses user_message_items
        widget_items workflow_items
    """,
    "chatkit_kit.widgets": """
        CheckboxField FormField PreviewMode RegistryKeys SelectField TextField WidgetBuildError
        WidgetDefinition WidgetError WidgetFileError WidgetPreviewWarning WidgetRegistry action_type
        confirmation_card key_value_copy_text key_value_list load_widget_file new_widget_item
        parse_action replace_widget replace_widget_for_sync_action simple_form stream_widget_item
        widget_done_event
    """,
}
PUBLIC_API: dict[str, list[str]] = {module: names.split() for module, names in PINNED.items()}


def public_modules_with_all() -> list[str]:
    """Every importable module without a `_`-prefixed path part that defines `__all__`."""
    found = ["chatkit_kit"]
    for info in pkgutil.walk_packages(chatkit_kit.__path__, "chatkit_kit."):
        if any(part.startswith("_") for part in info.name.split(".")[1:]):
            continue
        if "__all__" in vars(importlib.import_module(info.name)):
            found.append(info.name)
    return sorted(found)


def test_every_public_all_is_pinned() -> None:
    assert public_modules_with_all() == sorted(PUBLIC_API)


@pytest.mark.parametrize("module_name", sorted(PUBLIC_API))
def test_all_is_exactly_the_pinned_names(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert list(module.__all__) == PUBLIC_API[module_name]


@pytest.mark.parametrize("module_name", sorted(PUBLIC_API))
def test_every_exported_name_resolves(module_name: str) -> None:
    """Lazy exports included (the test environment has every extra installed)."""
    module = importlib.import_module(module_name)
    assert len(set(module.__all__)) == len(module.__all__)
    missing = [name for name in module.__all__ if getattr(module, name, None) is None]
    assert missing == []


def test_deprecated_aliases_stay_importable_outside_all() -> None:
    from chatkit_kit import widgets

    assert "sync_replace_widget" not in widgets.__all__
    assert callable(widgets.sync_replace_widget)
