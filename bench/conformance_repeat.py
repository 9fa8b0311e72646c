"""Run the conformance suite's verdict tests N times in a row, optionally under CPU load.

The variant stores (each must pass the contract tier), the broken stores (each must fail by its
own rule name), the upstream-like store (its causes, each once) and the blocking-rule tests
must give the same verdict on every run, also while every core is busy. This runs them
`--runs` times (a fresh pytest process each run) with `--busy` CPU-saturating processes
alongside, and prints how often each test passed:

    python bench/conformance_repeat.py --runs 20 --busy 2

Not part of the default test run: it takes minutes per run. The busy processes are started
and killed by this script (by their process ids). Exit status 1 if any test failed once.
"""

from __future__ import annotations

import argparse
import collections
import os
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TESTS = [
    "tests/testing/test_fairness.py::test_variant_store_passes_the_contract_tier",
    "tests/testing/test_suite_has_teeth.py",
    "tests/testing/test_upstream_like_store.py",
    "tests/testing/test_loop_hold.py",
]


def _outcomes(junit: Path) -> dict[str, bool]:
    """Test id -> passed, from a junit XML report."""
    found: dict[str, bool] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        found[name] = not any(child.tag in ("failure", "error", "skipped") for child in case)
    return found


def _load() -> str:
    """The 1-minute load average (Linux), for the log."""
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--busy", type=int, default=2, help="CPU busy-loop processes to start")
    parser.add_argument("tests", nargs="*", default=DEFAULT_TESTS)
    args = parser.parse_args(argv)
    # A SIGTERM ends the runs through `finally`, so the busy processes are killed too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    passes: collections.Counter[str] = collections.Counter()
    seen: set[str] = set()
    failures: list[str] = []
    try:
        for run in range(1, args.runs + 1):
            with tempfile.TemporaryDirectory() as tmp:
                junit = Path(tmp) / "junit.xml"
                started = time.monotonic()
                command = [sys.executable, "-m", "pytest", *args.tests, "-q", "-p"]
                command += ["no:cacheprovider", "-o", "junit_family=xunit2", f"--junitxml={junit}"]
                result = subprocess.run(
                    command,
                    cwd=ROOT,
                    env={**os.environ, "CI": "true"},
                    capture_output=True,
                    text=True,
                    timeout=3600,
                )
                outcomes = _outcomes(junit) if junit.exists() else {}
            seen |= set(outcomes)
            passes.update(name for name, ok in outcomes.items() if ok)
            failed = sorted(name for name, ok in outcomes.items() if not ok)
            if result.returncode != 0 and not failed:
                failed = [f"pytest exited {result.returncode}: {result.stdout[-500:]}"]
            failures += [f"run {run}: {name}" for name in failed]
            load = _load()
            print(
                f"run {run}/{args.runs}: {len(outcomes) - len(failed)}/{len(outcomes)} passed "
                f"in {time.monotonic() - started:.0f} s (load {load})"
                + (f"; FAILED {failed}" if failed else ""),
                flush=True,
            )
    finally:
        for process in busy:
            process.kill()
            process.wait()
    flipped = sorted(name for name in seen if passes[name] != args.runs)
    print(f"{len(seen)} tests, {args.runs} runs, {args.busy} busy processes")
    for name in flipped:
        print(f"  {name}: passed {passes[name]} of {args.runs}")
    if not flipped:
        print(f"  every test passed {args.runs} of {args.runs}")
    for line in failures:
        print(f"  {line}")
    return 1 if flipped or failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
