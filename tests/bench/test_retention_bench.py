"""bench/retention.py runs end to end with tiny sizes and prunes every old thread."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_retention_benchmark_runs(postgres_dsn: str) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "retention.py"), "--small", "--dsn", postgres_dsn],
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line.split() for line in result.stdout.splitlines() if "Store," in line]
    assert len(rows) == 2, result.stdout
    for row in rows:
        assert "20" in row, row  # every one of the 20 old threads pruned
        assert "left!)" not in " ".join(row)
