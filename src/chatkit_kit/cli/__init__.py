"""The `chatkit-kit` command line: `migrate`, `prune`, `erase-owner`, `demo` and `conformance`.

`main` is the console script's entry point (`chatkit_kit.cli:main`); `python -m chatkit_kit.cli`
runs it too. Each subcommand lives in a module of its own; the database arguments every
subcommand shares, and their checks, live in `_options`.
"""

from __future__ import annotations

from ._main import build_parser, main

__all__ = ["build_parser", "main"]
