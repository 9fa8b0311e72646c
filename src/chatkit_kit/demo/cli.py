"""The `chatkit-kit demo` subcommand."""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any

from .._optional import require

DEFAULT_MODEL = "gpt-4.1-mini"


def add_demo(subparsers: Any) -> None:
    """Register `demo` with the `chatkit-kit` parser."""
    from .app import DEFAULT_DATABASE_URL, DEFAULT_FILES_DIR

    parser = subparsers.add_parser(
        "demo",
        help="run a ChatKit backend and page on localhost",
        description="Run a demo ChatKit backend: SQLAlchemyStore on SQLite (or --database-url), "
        "direct uploads to local disk (or two-phase uploads to --s3-bucket), and a page at / "
        "embedding the ChatKit web component. Answers with an openai-agents Agent when "
        "OPENAI_API_KEY is set, otherwise with an offline responder.",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("CHATKIT_KIT_DEMO_DATABASE_URL", DEFAULT_DATABASE_URL),
        help=f"SQLAlchemy async URL (default: {DEFAULT_DATABASE_URL}; "
        "postgresql+asyncpg://..., postgresql+psycopg://... and mysql://... work too)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    parser.add_argument(
        "--files-dir",
        default=DEFAULT_FILES_DIR,
        help=f"directory for direct uploads (default: ./{DEFAULT_FILES_DIR})",
    )
    parser.add_argument(
        "--s3-bucket", default=None, help="use two-phase uploads to this S3 bucket instead"
    )
    parser.add_argument(
        "--s3-endpoint-url", default=None, help="S3 endpoint (e.g. a local MinIO or moto server)"
    )
    parser.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"model for the Agent (default: {DEFAULT_MODEL})"
    )
    parser.set_defaults(handler=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    """Start the demo server; returns when it is stopped (Ctrl-C)."""
    require("starlette", "server")
    require("sqlalchemy", "sqlalchemy")
    uvicorn = require("uvicorn", "server")
    if args.s3_bucket:
        require("boto3", "s3")
    from .app import DemoConfig, build_app
    from .responders import agent_responder

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("chatkit").setLevel(logging.WARNING)
    config = DemoConfig(
        database_url=args.database_url,
        host=args.host,
        port=args.port,
        files_dir=args.files_dir,
        s3_bucket=args.s3_bucket,
        s3_endpoint_url=args.s3_endpoint_url,
    )
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
    uploads = f"S3 bucket {args.s3_bucket}" if args.s3_bucket else f"./{args.files_dir}"
    print(f"chatkit-kit demo: database {args.database_url}; uploads in {uploads}")
    print(f"chatkit-kit demo: open {config.base_url}/ (Ctrl-C stops)", flush=True)
    uvicorn.run(build_app(config), host=args.host, port=args.port, log_level="warning")
    print("chatkit-kit demo: stopped")
    return 0
