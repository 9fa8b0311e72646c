"""bench/retention.py runs end to end with tiny sizes and prunes every old thread."""

from __future__ import annotations

import pytest

from . import run_bench

pytestmark = pytest.mark.slow  # runs a bench script end to end: `nox -s slow`


def test_retention_benchmark_runs(postgres_dsn: str) -> None:
    result = run_bench("retention.py", "--small", "--dsn", postgres_dsn)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line.split() for line in result.stdout.splitlines() if "Store," in line]
    assert len(rows) == 2, result.stdout
    for row in rows:
        assert "20" in row, row  # every one of the 20 old threads pruned
        assert "left!)" not in " ".join(row)
