"""Developer tasks: `nox` runs the checks and the fast tests; `CI=true nox` what CI runs.

`nox` (no arguments, the README's test command, what `.ci/run` calls) runs lint, typecheck,
docs, the minimal-install and demo-extra checks, and the fast test suite on the highest supported
Python that this machine has. Under `CI=true` it runs the fast suite on the lowest and the highest
one (with coverage on the lowest) and the `slow` session (long property runs, bench smoke tests,
the headless-browser demo test), and every supported Python must be found. `nox -s tests` runs
the fast suite on every supported Python; `nox -s tests-3.12` on one; `nox -s slow` the slow tests.

Interpreters are found without set-up (`find_python`): `python3.X` on PATH (a pyenv shim that
refuses an unselected version does not count), then pyenv's own builds
(`$(pyenv root)/versions/3.X.*/bin/python3.X`), then uv-managed ones (`uv python find 3.X`,
`~/.local/share/uv/python/cpython-3.X.*/bin/python3.X`), then the usual system directories. Each
one found is linked into `.nox/.interpreters/`, which goes first on PATH for nox. At the end nox
prints how long every session took.
"""

from __future__ import annotations

import atexit
import functools
import glob
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
PYTHONS = ["3.10", "3.11", "3.12", "3.13"]
"""Every supported Python (keep in step with the classifiers in pyproject.toml)."""
PREFERRED_PYTHON = "3.11"
"""The Python of the sessions that do not depend on the version (lint, typecheck, docs, ...)."""
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
"""Under CI=true every supported Python is required and the slow tests run too."""
SYSTEM_DIRS = ["/usr/local/bin", "/usr/bin", "/opt/homebrew/bin", "/opt/local/bin"]
"""Searched last for `python3.X` (system packages, Homebrew, MacPorts)."""


# ---------------------------------------------------------------------------------------------
# Interpreter discovery


def _probe(binary: str, version: str) -> str | None:
    """The real executable behind `binary` if it runs and is Python `version`, else None.

    A pyenv shim of a version pyenv has not selected fails here; one that works resolves to the
    build it runs, so nox does not go through the shim again.
    """
    try:
        done = subprocess.run(
            [binary, "-c", "import sys; print('%d.%d' % sys.version_info[:2], sys.executable)"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    reported, _, executable = done.stdout.strip().partition(" ")
    if done.returncode != 0 or reported != version:
        return None
    return executable if executable and os.path.isfile(executable) else binary


def _newest_first(paths: list[str], version: str) -> list[str]:
    """`paths` holding `<version>.<patch>` in a directory name, the highest patch first."""
    pattern = re.compile(re.escape(version) + r"\.(\d+)(?![\dt+])")

    def patch(path: str) -> int:
        found = pattern.search(path)
        return int(found.group(1)) if found else -1

    return sorted((p for p in paths if patch(p) >= 0), key=patch, reverse=True)


@functools.cache
def _pyenv_root() -> Path | None:
    if os.environ.get("PYENV_ROOT"):
        return Path(os.environ["PYENV_ROOT"])
    pyenv = shutil.which("pyenv")
    if pyenv:
        try:
            done = subprocess.run(
                [pyenv, "root"], capture_output=True, text=True, timeout=30, check=False
            )
        except (OSError, subprocess.SubprocessError):
            done = None
        if done is not None and done.returncode == 0 and done.stdout.strip():
            return Path(done.stdout.strip())
    default = Path.home() / ".pyenv"
    return default if default.is_dir() else None


def _uv_python_dir() -> Path:
    if os.environ.get("UV_PYTHON_INSTALL_DIR"):
        return Path(os.environ["UV_PYTHON_INSTALL_DIR"])
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "uv" / "python"


def _uv_find(version: str) -> list[str]:
    uv = shutil.which("uv")
    if not uv:
        return []
    try:
        done = subprocess.run(
            [uv, "python", "find", version],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"},
        )
    except (OSError, subprocess.SubprocessError):
        return []
    return [done.stdout.strip()] if done.returncode == 0 and done.stdout.strip() else []


def _candidates(version: str) -> Iterator[tuple[str, str]]:
    """(where, path) of every `python<version>` worth trying, in the order they are tried."""
    name = f"python{version}"
    root = _pyenv_root()
    # pyenv's shims are skipped: its builds are searched right after, without a shim's start-up.
    skipped = {str(ROOT / ".nox" / ".interpreters"), str(root / "shims") if root else ""}
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        if directory and os.path.normpath(directory) not in skipped:
            binary = shutil.which(name, path=directory)
            if binary:
                yield "PATH", binary
    if root is not None:
        for binary in _newest_first(
            glob.glob(str(root / "versions" / "*" / "bin" / name)), version
        ):
            yield "pyenv", binary
    for binary in _uv_find(version):
        yield "uv", binary
    uv_builds = glob.glob(str(_uv_python_dir() / f"cpython-{version}.*" / "bin" / name))
    for binary in _newest_first(uv_builds, version):
        yield "uv", binary
    for directory in SYSTEM_DIRS:
        binary = shutil.which(name, path=directory)
        if binary:
            yield "system", binary


def find_python(version: str) -> tuple[str, str] | None:
    """(where, path) of the first working Python `version` (e.g. "3.12"), or None."""
    tried: set[str] = set()
    for where, binary in _candidates(version):
        if binary in tried:
            continue
        tried.add(binary)
        executable = _probe(binary, version)
        if executable is not None:
            return where, executable
    return None


def _link_interpreters(found: dict[str, tuple[str, str]]) -> None:
    """Link every Python found into `.nox/.interpreters/`, first on PATH, where nox looks."""
    if os.name == "nt":  # nox finds Windows interpreters through the py launcher and registry
        return
    directory = ROOT / ".nox" / ".interpreters"
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.iterdir():
        stale.unlink()
    for version, (_where, binary) in found.items():
        (directory / f"python{version}").symlink_to(binary)
    os.environ["PATH"] = os.pathsep.join([str(directory), os.environ.get("PATH", "")])


FOUND = {version: where for version in PYTHONS if (where := find_python(version)) is not None}
if os.name == "nt":  # nox itself finds them through the py launcher and the registry
    FOUND = {version: ("nox", f"python{version}") for version in PYTHONS}
MISSING = [version for version in PYTHONS if version not in FOUND]
SEARCHED = (
    "python3.X on PATH, $(pyenv root)/versions/3.X.*, uv python find 3.X, "
    f"{_uv_python_dir()}/cpython-3.X.*, {', '.join(SYSTEM_DIRS)}"
)
if MISSING and IN_CI:
    raise SystemExit(
        f"nox: CI=true needs every supported Python, and {', '.join(MISSING)} were not found "
        f"(searched {SEARCHED})"
    )
_link_interpreters(FOUND)
if IN_CI:
    TEST_PYTHONS = sorted({min(FOUND), max(FOUND)}) if FOUND else [PYTHONS[0], PYTHONS[-1]]
else:
    TEST_PYTHONS = [max(FOUND)] if FOUND else [PYTHONS[-1]]
"""The default `tests` sessions: under CI=true the lowest and the highest supported Python
found; elsewhere the highest only (the fastest; the others are a `nox -s tests-3.X` away), which
keeps the default command within ten minutes on a 2-core machine."""
PYTHON = PREFERRED_PYTHON if PREFERRED_PYTHON in FOUND or not FOUND else max(FOUND)
print(
    "nox: Pythons found: "
    + (", ".join(f"{v} ({where}: {path})" for v, (where, path) in FOUND.items()) or "none"),
    file=sys.stderr,
)
if MISSING:
    print(
        f"nox: skipped Python {', '.join(MISSING)} (not found; searched {SEARCHED}); "
        f"the tests run on {' and '.join(TEST_PYTHONS)}",
        file=sys.stderr,
    )
if not IN_CI and len(FOUND) > 1:
    print(
        f"nox: the fast tests run on Python {TEST_PYTHONS[0]} only; CI=true adds "
        f"{min(FOUND)} (with coverage) and the slow session (`nox -s tests` runs every "
        "Python found)",
        file=sys.stderr,
    )

nox.options.sessions = [
    "lint",
    "typecheck",
    "minimal",
    "demo_extra",
    "docs",
    *(f"tests-{version}" for version in TEST_PYTHONS),
    *(["slow"] if IN_CI else []),
]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = IN_CI


# ---------------------------------------------------------------------------------------------
# Session timing and installs


_TIMES: list[tuple[str, str, float]] = []
_last_end = [time.monotonic()]


def _print_times() -> None:
    if not _TIMES:
        return
    width = max(len(name) for name, _, _ in _TIMES)
    lines = [f"  {name:<{width}}  {result:<8} {seconds:8.1f} s" for name, result, seconds in _TIMES]
    total = sum(seconds for _, _, seconds in _TIMES)
    lines.append(f"  {'total':<{width}}  {'':<8} {total:8.1f} s")
    if MISSING:
        lines.append(f"  skipped Python {', '.join(MISSING)}: not found on this machine")
    print("nox: session times (virtualenv set-up and installs included):", file=sys.stderr)
    print("\n".join(lines), file=sys.stderr)


atexit.register(_print_times)


def timed(func: Callable[[nox.Session], None]) -> Callable[[nox.Session], None]:
    """Record how long a session took, from the end of the previous one (so set-up counts)."""

    @functools.wraps(func)
    def wrapper(session: nox.Session) -> None:
        result = "failed"
        try:
            func(session)
            result = "success"
        except BaseException as exc:
            if "skip" in type(exc).__name__.lower():
                result = "skipped"
            raise
        finally:
            now = time.monotonic()
            _TIMES.append((session.name, result, now - _last_end[0]))
            _last_end[0] = now

    return wrapper


def _digest(*paths: Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        files = sorted(path.rglob("*")) if path.is_dir() else [path]
        for file in files:
            if file.is_file() and "__pycache__" not in file.parts:
                digest.update(str(file.relative_to(ROOT)).encode())
                digest.update(file.read_bytes())
    return digest.hexdigest()


def install(session: nox.Session, *requirements: str, editable: bool = False) -> None:
    """`session.install(...)`, skipped when the reused virtualenv already holds the same thing.

    The stamp is the requirements plus pyproject.toml (and, for a non-editable install of the
    project, the source tree): a change to either installs again.
    """
    paths = [ROOT / "pyproject.toml"] + ([] if editable else [ROOT / "src"])
    stamp = f"{' '.join(requirements)} editable={editable} {_digest(*paths)}"
    marker = Path(session.virtualenv.location) / ".chatkit-kit-installed"
    if marker.is_file() and marker.read_text() == stamp:
        session.log("installed requirements are unchanged; skipping the install")
        return
    args = [arg for req in requirements for arg in (["-e", req] if editable else [req])]
    session.install(*args)
    marker.write_text(stamp)


# ---------------------------------------------------------------------------------------------
# Sessions


@nox.session(python=PYTHONS)
@timed
def tests(session: nox.Session) -> None:
    """The fast test suite (everything not marked `slow`); under CI=true with coverage once.

    Under CI=true the lowest supported Python's session measures coverage and fails when it
    (lines and branches) drops below `fail_under` in pyproject.toml; every other run goes without
    the tracer, which slows the suite by about half (`-- --cov` measures it anywhere). The
    tests run in two pytest-xdist workers (most of their time is spent waiting on databases and
    servers); pass `-- -n 0` to run them in one process.
    """
    install(session, ".[dev]", editable=True)
    measured = IN_CI and session.python == TEST_PYTHONS[0]
    coverage = ["--cov", "--cov-report=term"] if measured else []
    session.run("pytest", "-n", "2", "-m", "not slow", *coverage, *session.posargs)


@nox.session(python=PYTHON)
@timed
def slow(session: nox.Session) -> None:
    """The slow, load-sensitive tests (marker `slow`): long property runs, bench smoke, browser.

    CI runs it (`CI=true nox`); `nox` on a developer machine does not.
    """
    install(session, ".[dev]", editable=True)
    session.run("pytest", "-n", "2", "-m", "slow", *session.posargs)


MINIMAL_CHECK = """
from chatkit_kit.stores import MemoryStore
from chatkit_kit.testing import StoreConformance, run_conformance

assert run_conformance(MemoryStore).ok
for name, extra in [("SQLAlchemyStore", "sqlalchemy"), ("AsyncpgStore", "asyncpg")]:
    try:
        getattr(__import__("chatkit_kit.stores", fromlist=[name]), name)
    except ImportError as exc:
        message = str(exc)
        # One command, naming the extra once, installing from where chatkit-kit came from.
        assert message.count("pip install") == 1 and message.count(f"[{extra}]") == 1, message
        assert message.endswith(f'[{extra}]"'), message
    else:
        raise AssertionError(f"{name} imported without its extra")
print("minimal install: MemoryStore and StoreConformance work; missing extras are named")
"""


@nox.session(python=PYTHON)
@timed
def minimal(session: nox.Session) -> None:
    """Install only the base dependencies plus `testing` and check what must work there."""
    install(session, ".[testing]")
    session.run("python", "-c", MINIMAL_CHECK)


@nox.session(python=PYTHON)
@timed
def demo_extra(session: nox.Session) -> None:
    """Install only the `demo` extra and check the demo answers on SQLite and on PostgreSQL."""
    install(session, ".[demo]")
    session.run("python", "tests/demo/demo_extra_check.py")


@nox.session(python=PYTHON)
@timed
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    install(session, "ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
@timed
def typecheck(session: nox.Session) -> None:
    """mypy --strict on src and on the tests (they are typed code too), incrementally.

    The cache lives in the session's reused virtualenv, so a typecheck of an unchanged tree
    takes seconds; it is not shared with a mypy run from another environment.
    """
    install(session, ".[dev]", editable=True)
    cache = Path(session.virtualenv.location) / "mypy_cache"
    session.run("mypy", "--strict", "--cache-dir", str(cache), "src", "tests")


@nox.session(python=PYTHON)
@timed
def docs(session: nox.Session) -> None:
    """Build the documentation site strictly (broken links and references fail)."""
    install(session, ".[docs]")
    session.run(
        "mkdocs", "build", "--strict", "--site-dir", "site", env={"NO_MKDOCS_2_WARNING": "1"}
    )


@nox.session(python=PYTHON)
@timed
def bench(session: nox.Session) -> None:
    """Run every benchmark script in bench/ and print its tables."""
    install(session, ".[dev]", editable=True)
    for script in sorted(Path("bench").glob("*.py")):
        session.run("python", str(script), *session.posargs)
