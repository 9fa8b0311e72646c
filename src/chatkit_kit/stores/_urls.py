"""Database URLs in messages: passwords redacted.

Which URLs the stores take, and the SQLAlchemy URL each resolves to, is the dialects' (their
`url_schemes` and `drivers`; `stores.sql.dialects.resolve_database_url`)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def redact_database_url(url: str) -> str:
    """`url` with its password replaced by `***`, for logs and messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
