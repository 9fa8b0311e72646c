"""Developer tasks: `nox` runs lint, typecheck and tests; `nox -s bench` runs the benchmarks."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "typecheck", "minimal", "docs", "tests"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

PYTHON = "3.11"


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Install the package with every extra and run the whole test suite with coverage.

    Fails when coverage (lines and branches) drops below `fail_under` in pyproject.toml.
    """
    session.install(".[dev]")
    session.run("pytest", "--cov", "--cov-report=term", *session.posargs)


MINIMAL_CHECK = """
from chatkit_kit.stores import MemoryStore
from chatkit_kit.testing import StoreConformance, run_conformance

assert run_conformance(MemoryStore).ok
for name, extra in [("SQLAlchemyStore", "sqlalchemy"), ("AsyncpgStore", "asyncpg")]:
    try:
        getattr(__import__("chatkit_kit.stores", fromlist=[name]), name)
    except ImportError as exc:
        assert f"chatkit-kit[{extra}]" in str(exc), exc
    else:
        raise AssertionError(f"{name} imported without its extra")
print("minimal install: MemoryStore and StoreConformance work; missing extras are named")
"""


@nox.session(python=PYTHON)
def minimal(session: nox.Session) -> None:
    """Install only the base dependencies plus `testing` and check what must work there."""
    session.install(".[testing]")
    session.run("python", "-c", MINIMAL_CHECK)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy --strict on src and on the tests (they are typed code too)."""
    session.install(".[dev]")
    session.run("mypy", "--strict", "src", "tests")


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """Build the documentation site strictly (broken links and references fail)."""
    session.install(".[docs]")
    session.run(
        "mkdocs", "build", "--strict", "--site-dir", "site", env={"NO_MKDOCS_2_WARNING": "1"}
    )


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Run every benchmark script in bench/ and print its tables."""
    session.install(".[dev]")
    for script in sorted(__import__("pathlib").Path("bench").glob("*.py")):
        session.run("python", str(script), *session.posargs)
