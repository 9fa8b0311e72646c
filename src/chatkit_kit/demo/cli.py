"""The `chatkit-kit demo` subcommand."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from typing import TYPE_CHECKING, Any

from .._optional import require

if TYPE_CHECKING:  # pragma: no cover
    from .app import DemoConfig

DEFAULT_MODEL = "gpt-4.1-mini"


def add_demo(subparsers: Any, common: argparse.ArgumentParser | None = None) -> None:
    """Register `demo` with the `chatkit-kit` parser (`common`: options every subcommand takes)."""
    from .app import DEFAULT_DATABASE_URL, DEFAULT_FILES_DIR

    parser = subparsers.add_parser(
        "demo",
        parents=[common] if common is not None else [],
        help="run a ChatKit backend and page on localhost",
        description="Run a demo ChatKit backend: SQLAlchemyStore on SQLite (or --database-url), "
        "direct uploads to local disk (or two-phase uploads to --s3-bucket), and a page at / "
        "embedding the ChatKit web component. Answers with an openai-agents Agent when "
        "OPENAI_API_KEY is set, otherwise with an offline responder.",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("CHATKIT_KIT_DEMO_DATABASE_URL", DEFAULT_DATABASE_URL),
        help=f"database URL (default: {DEFAULT_DATABASE_URL}); postgresql://user@host/db "
        "works with the demo extra alone (psycopg), postgresql+asyncpg://... with the asyncpg "
        "extra, mysql://user@host/db with the mysql extra; checked at startup; a password in "
        "the URL is never printed",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default: 127.0.0.1; 0.0.0.0 for every interface)",
    )
    parser.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    parser.add_argument(
        "--files-dir",
        default=DEFAULT_FILES_DIR,
        help=f"directory for direct uploads (default: ./{DEFAULT_FILES_DIR})",
    )
    parser.add_argument(
        "--s3-bucket",
        default=None,
        help="use two-phase uploads to this existing S3 bucket instead (checked at startup)",
    )
    parser.add_argument(
        "--s3-endpoint-url", default=None, help="S3 endpoint (e.g. a local MinIO or moto server)"
    )
    parser.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"model for the Agent (default: {DEFAULT_MODEL})"
    )
    parser.set_defaults(handler=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    """Start the demo server; returns when it is stopped (Ctrl-C).

    The database and the S3 bucket are checked first: a problem prints one line saying what
    to do (exit status 1) instead of a traceback. Passwords in URLs are never printed.
    """
    from ._startup import (
        DemoStartupError,
        listens_everywhere,
        mask_url,
        missing_module_message,
    )

    try:
        require("starlette", "demo")
        require("sqlalchemy", "demo")
        uvicorn = require("uvicorn", "demo")
        if args.s3_bucket:
            require("boto3", "s3")
    except ImportError as exc:
        print(f"chatkit-kit demo: {missing_module_message(exc)}", file=sys.stderr)
        return 1
    from .app import DemoConfig, build_app
    from .responders import agent_responder

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for noisy in ("chatkit", "botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    config = DemoConfig(
        database_url=args.database_url,
        host=args.host,
        port=args.port,
        files_dir=args.files_dir,
        s3_bucket=args.s3_bucket,
        s3_endpoint_url=args.s3_endpoint_url,
    )
    database = mask_url(args.database_url)
    try:
        version = asyncio.run(_preflight(config))
    except DemoStartupError as exc:
        if getattr(args, "debug", False):
            raise
        print(f"chatkit-kit demo: {exc}", file=sys.stderr)
        return 1
    if os.environ.get("OPENAI_API_KEY"):
        from agents import Agent

        agent: Agent[Any] = Agent(
            name="chatkit-kit demo",
            instructions="You are a helpful assistant. Be concise.",
            model=args.model,
        )
        config.responder = agent_responder(agent)
        config.mode = f"answering with {args.model}"
    else:
        config.mode = "offline responder (no OPENAI_API_KEY)"
    print(f"chatkit-kit demo: {config.mode}")
    if not os.environ.get("OPENAI_API_KEY"):
        print("chatkit-kit demo: set OPENAI_API_KEY to answer with an openai-agents Agent")
    if args.s3_bucket:
        endpoint = f" at {mask_url(args.s3_endpoint_url)}" if args.s3_endpoint_url else ""
        uploads = f"S3 bucket {args.s3_bucket}{endpoint}"
    else:
        uploads = f"./{args.files_dir}"
    print(f"chatkit-kit demo: database {database} (schema version {version}); uploads in {uploads}")
    print(f"chatkit-kit demo: open {config.base_url}/ (Ctrl-C stops)", flush=True)
    if listens_everywhere(args.host):
        print(
            f"chatkit-kit demo: listening on every interface: from another machine open "
            f"http://<this machine's address>:{args.port}/",
            flush=True,
        )
    # The `server` extra installs uvloop and httptools; "auto" picks them (docs/asgi.md#running-it).
    uvicorn.run(
        build_app(config),
        host=args.host,
        port=args.port,
        log_level="warning",
        loop="auto",
        http="auto",
    )
    print("chatkit-kit demo: stopped")
    return 0


async def _preflight(config: DemoConfig) -> int:
    """Check the S3 bucket (when used) and migrate the database; returns the schema version."""
    from ._startup import check_database, check_s3

    if config.s3_bucket:
        await check_s3(config.s3_bucket, config.s3_endpoint_url)
    version: int = await check_database(config.database_url)
    return version
