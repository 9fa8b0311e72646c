"""Smoke tests of the scripts in bench/: each runs end to end with tiny sizes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_bench(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `bench/<script>` with this interpreter and the project's `src` (at most 300 s)."""
    return subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
