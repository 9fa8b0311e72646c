"""Developer tasks: `nox` runs what CI runs; `nox -s tests` every Python; `nox -s bench` benchmarks.

`nox` (no arguments, what `.ci/run` calls) runs lint, typecheck, docs, the minimal-install and
demo-extra checks, and the whole test suite on the lowest and the highest supported Python.
`nox -s tests` runs the suite on every supported Python; `nox -s tests-3.12` on one.
"""

from __future__ import annotations

import nox

PYTHONS = ["3.10", "3.11", "3.12", "3.13"]
"""Every supported Python (keep in step with the classifiers in pyproject.toml)."""
PYTHON = "3.11"
"""The Python of the sessions that do not depend on the version (lint, typecheck, docs, ...)."""

nox.options.sessions = [
    "lint",
    "typecheck",
    "minimal",
    "demo_extra",
    "docs",
    f"tests-{PYTHONS[0]}",
    f"tests-{PYTHONS[-1]}",
]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """Install the package with every extra and run the whole test suite with coverage.

    Fails when coverage (lines and branches) drops below `fail_under` in pyproject.toml. The
    tests run in two pytest-xdist workers (most of their time is spent waiting on databases and
    servers); pass `-- -n 0` to run them in one process.
    """
    session.install(".[dev]")
    session.run("pytest", "-n", "2", "--cov", "--cov-report=term", *session.posargs)


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
def demo_extra(session: nox.Session) -> None:
    """Install only the `demo` extra and check the demo answers on SQLite and on PostgreSQL."""
    session.install(".[demo]")
    session.run("python", "tests/demo/demo_extra_check.py")


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
