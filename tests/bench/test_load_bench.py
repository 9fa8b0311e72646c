"""bench/load.py runs end to end with tiny levels (timings are not checked; the data check is)."""

from __future__ import annotations

import pytest

from . import run_bench

pytestmark = pytest.mark.slow  # runs a bench script end to end: `nox -s slow`


def test_load_benchmark_runs_and_its_data_check_passes(postgres_dsn: str) -> None:
    result = run_bench("load.py", "--smoke", "--dsn", postgres_dsn)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "concurrency  requests" in out
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert [row[0] for row in rows] == ["2", "4"]
    assert all(int(row[1]) > 0 for row in rows), out
    assert all(row[5] == "0" for row in rows), out  # no 5xx below saturation
    assert "0 problems" in out
