"""bench/roundtrips.py: the steady-state round trips per ChatKit request are pinned.

The figure does not depend on machine noise, so it is asserted: one round trip (PostgreSQL:
one Query/Sync on the wire) per store call that upstream's server and the attachment backend
make, no schema checks, pool resets or cursor look-ups on top; delete_thread alone is a
transaction of two statements (four round trips).
"""

from __future__ import annotations

import json

import pytest

from . import run_bench

pytestmark = pytest.mark.slow  # runs a bench script end to end: `nox -s slow`

STORE_CALLS = {
    "threads.create": 3,  # save_thread, add_thread_item (user), add_thread_item (assistant)
    "threads.add_user_message": 3,  # load_thread, add_thread_item x2
    "items.list": 1,
    "items.list (after)": 1,
    "threads.list": 1,
    "attachments.create": 1,  # save_attachment
    "attachments.delete": 2,  # load_attachment (backend), delete_attachment
    "threads.delete": 2,  # list_thread_attachments (cascade), delete_thread
}


def test_round_trips_per_request_are_one_per_store_call(postgres_dsn: str) -> None:
    result = run_bench("roundtrips.py", "--json", "--dsn", postgres_dsn)
    assert result.returncode == 0, result.stderr[-3000:]
    counts = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(counts) == {"sqlite", "sqlalchemy+asyncpg", "sqlalchemy+psycopg", "asyncpg"}
    for flavour, per_request in counts.items():
        calls = {name: pair[0] for name, pair in per_request.items()}
        trips = {name: pair[1] for name, pair in per_request.items()}
        assert calls == STORE_CALLS, flavour
        expected = dict(STORE_CALLS)
        # delete_thread is the one two-statement transaction (the thread row first, which waits
        # for concurrent item writes, then the items): BEGIN, two DELETEs, COMMIT.
        expected["threads.delete"] = 1 + 4
        assert trips == expected, flavour
