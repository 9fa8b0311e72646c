"""Smoke test: bench/asgi.py runs end to end with a tiny stream and prints its table."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow  # runs a bench script end to end: `nox -s slow`


def test_asgi_benchmark_runs() -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), *filter(None, [env.get("PYTHONPATH")])])
    completed = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "asgi.py"), "--events", "20", "--runs", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    assert any("20-event stream" in line for line in lines)
    for label in (
        "process() in process (floor)",
        "hand-written StreamingResponse",
        "chatkit_kit.asgi",
    ):
        [row] = [line for line in lines if line.startswith(label)]
        assert row.rstrip().endswith("x")
