"""Production building blocks for OpenAI ChatKit servers."""

from __future__ import annotations

__version__ = "0.1.0"
"""The package version; pyproject.toml reads it from here (`[tool.hatch.version]`)."""

__all__ = ["__version__"]
