"""Six ChatKit servers side by side under the same request mix, driven by wrk, in one run.

Starts bench/_side_app.py once per variant, each with N uvicorn workers (uvloop and httptools,
the `server` extra's default) on loopback:

  (a) floor: upstream ChatKitServer, a no-I/O dict store, a hand-written Starlette handler;
  (b) docs_pg: a PostgreSQL store written from upstream's docs, the same handler;
  (c) asyncpg: AsyncpgStore + chatkit_routes;   (d) sqlalchemy_pg: SQLAlchemyStore, PostgreSQL;
  (e) sqlalchemy_sqlite: SQLAlchemyStore, SQLite;   (f) memory: MemoryStore + chatkit_routes.

Then, for each round and concurrency level, runs `wrk -t C -c C` with bench/mix.lua (per
virtual user: threads.create streamed, an upload, add_user_message with it streamed,
items.list, another message, items.list, threads.list) for a fixed time against each server in
turn, the floor before and after every other one: each run is compared with the mean of the
two floor runs around it, so drift in the machine's speed (other work, caches, CPU frequency)
cancels out. Before each run it waits (at most 20 s) until the machine is quiet again, so what
a run leaves behind (PostgreSQL's checkpoints and autovacuum, the kernel writing back dirty
pages) does not slow the next. wrk is C: its own CPU per request is printed, and is a small
fraction of the server's. Prints per variant and level: requests/s and server CPU per request
(medians over runs) and both as ratios to the floor (medians of those per-run ratios),
p50/p99, errors; and the machine's load: load average, the CPU other processes used during the
runs, the waits for quiet, the spread of the floor's runs, and what a round trip between two
threads costs in CPU (every database round trip and every hop to a worker thread pays it).

Afterwards it checks the data of every variant with a shared store (all but the per-worker
memory ones) through the ChatKit API: every acknowledged user message stored exactly once, in
the order sent, each answered; no rejected message stored twice. Exit status 1 on a problem.

    python bench/side_by_side.py [--levels 4,16] [--seconds 10] [--rounds 3] [--workers 2]
        [--variants floor,asyncpg,...] [--smoke]

Needs `wrk` (Debian: apt-get install wrk) and PostgreSQL at CHATKIT_KIT_TEST_POSTGRES_DSN.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
DSN = os.environ.get("CHATKIT_KIT_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
VARIANTS = ("floor", "docs_pg", "asyncpg", "sqlalchemy_pg", "sqlalchemy_sqlite", "memory")
LABELS = {
    "floor": "(a) upstream, no-I/O dict store (floor)",
    "docs_pg": "(b) PostgreSQL store from upstream's docs",
    "asyncpg": "(c) AsyncpgStore + chatkit_kit.asgi",
    "sqlalchemy_pg": "(d) SQLAlchemyStore, PostgreSQL",
    "sqlalchemy_sqlite": "(e) SQLAlchemyStore, SQLite",
    "memory": "(f) MemoryStore + chatkit_kit.asgi",
}
SHARED_STORE = {"docs_pg", "asyncpg", "sqlalchemy_pg", "sqlalchemy_sqlite"}
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def process_tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by `pid`'s children (uvicorn's workers)."""
    total = 0.0
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return 0.0
    for child in [str(pid), *children]:
        try:
            fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


def wakeup_cost(rounds: int = 2000) -> float:
    """CPU microseconds of one round trip between two threads over a socket pair: what waking
    another thread or process costs on this machine (a database round trip has two such
    wakeups, a hop to a worker thread too), the figure that sets how far any server with I/O
    stays from the no-I/O floor."""
    ours, theirs = socket.socketpair()

    def echo() -> None:
        while data := theirs.recv(64):
            theirs.sendall(data)

    thread = threading.Thread(target=echo, daemon=True)
    thread.start()
    try:
        started = time.process_time()
        for _ in range(rounds):
            ours.sendall(b"x")
            ours.recv(64)
        return (time.process_time() - started) / rounds * 1e6
    finally:
        ours.close()
        thread.join(5)
        theirs.close()


def settle(quiet: float = 0.35, longest: float = 20.0) -> float:
    """Wait until the machine is quiet again after a run: the CPUs less than `quiet` busy over
    half a second (what a run leaves behind, such as PostgreSQL's checkpoints and autovacuum or
    the kernel writing back dirty pages, would otherwise slow the next run), at most `longest`
    seconds. Returns the seconds waited."""
    started = time.monotonic()
    busy, total = machine_busy()
    while time.monotonic() - started < longest:
        time.sleep(0.5)
        busy_now, total_now = machine_busy()
        if total_now > total and (busy_now - busy) / (total_now - total) < quiet:
            break
        busy, total = busy_now, total_now
    return time.monotonic() - started


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    parts = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = parts[3] + parts[4]
    return (sum(parts) - idle) / CLK_TCK, sum(parts) / CLK_TCK


@dataclass
class Sample:
    requests: int
    seconds: float
    server_cpu: float
    wrk_cpu: float
    other_cpu: float
    p50_ms: float
    p99_ms: float
    errors: int
    s4xx: int
    s5xx: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms(self) -> float:
        return 1000 * self.server_cpu / self.requests if self.requests else 0.0


@dataclass
class Sent:
    acked: dict[str, list[tuple[str, str]]] = field(default_factory=lambda: defaultdict(list))
    rejected: dict[str, list[tuple[str, str]]] = field(default_factory=lambda: defaultdict(list))


@dataclass
class Running:
    variant: str
    process: subprocess.Popen[bytes]
    base: str
    port: int
    sent: Sent = field(default_factory=Sent)


def run_wrk(
    server: Running, concurrency: int, seconds: float, run_id: str, out_dir: Path
) -> Sample:
    out = out_dir / f"{run_id}.tsv"
    command = [
        "wrk", "-t", str(concurrency), "-c", str(concurrency), "-d", f"{max(1, round(seconds))}s",
        "--timeout", "30s", "-s", str(BENCH / "mix.lua"), server.base, "--", run_id,
    ]  # fmt: skip
    cpu_before = process_tree_cpu(server.process.pid)
    busy_before, _ = machine_busy()
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    done = subprocess.run(
        command, env={**os.environ, "WRK_OUT": str(out)}, capture_output=True, text=True
    )
    if done.returncode != 0 or not out.exists():
        raise RuntimeError(f"wrk failed on {server.variant}: {done.stdout}{done.stderr}")
    elapsed = time.monotonic() - started
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy_after, _ = machine_busy()
    server_cpu = process_tree_cpu(server.process.pid) - cpu_before
    wrk_cpu = (children_after.ru_utime - children_before.ru_utime) + (
        children_after.ru_stime - children_before.ru_stime
    )
    values: dict[str, float] = defaultdict(float)
    for line in out.read_text().splitlines():
        kind, _, rest = line.partition("\t")
        if kind == "acked" or kind == "rejected":
            user, thread_id, text = rest.split("\t", 2)
            target = server.sent.acked if kind == "acked" else server.sent.rejected
            target[user].append((thread_id, text))
        else:
            values[kind] += float(rest)
    return Sample(
        requests=int(values["requests"]),
        seconds=values["duration_us"] / 1e6 or elapsed,
        server_cpu=server_cpu,
        wrk_cpu=wrk_cpu,
        other_cpu=max(0.0, (busy_after - busy_before) - server_cpu - wrk_cpu),
        p50_ms=values["p50_us"] / 1000,
        p99_ms=values["p99_us"] / 1000,
        errors=int(values["errors"]),
        s4xx=int(values["s4xx"]),
        s5xx=int(values["s5xx"]),
    )


async def wait_until_up(server: Running, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=server.base) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise RuntimeError(f"{server.variant} exited with {server.process.returncode}")
            try:
                response = await client.post(
                    "/chatkit",
                    json={"type": "threads.list", "params": {}},
                    headers={"x-user-id": "warmup"},
                )
                if response.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.3)
    raise RuntimeError(f"{server.variant} did not answer within {seconds} s")


async def check_data(server: Running) -> list[str]:
    """Problems with what the server stored, read back through the ChatKit API."""
    problems: list[str] = []
    async with httpx.AsyncClient(base_url=server.base, timeout=60) as client:

        async def call(user: str, body: dict[str, Any]) -> dict[str, Any]:
            response = await client.post("/chatkit", json=body, headers={"x-user-id": user})
            response.raise_for_status()
            result: dict[str, Any] = response.json()
            return result

        users = set(server.sent.acked) | set(server.sent.rejected)
        for user in sorted(users):
            # wrk stops mid-request at the end of a run: a message it never saw an answer to is
            # neither acknowledged nor rejected, and may be stored without its answer.
            known = {text for _, text in server.sent.acked.get(user, [])}
            known |= {text for _, text in server.sent.rejected.get(user, [])}
            stored: dict[str, list[str]] = {}
            threads = await call(user, {"type": "threads.list", "params": {"limit": 1000}})
            for thread in threads["data"]:
                page = await call(
                    user,
                    {
                        "type": "items.list",
                        "params": {"thread_id": thread["id"], "limit": 1000, "order": "asc"},
                    },
                )
                items = page["data"]
                texts = stored.setdefault(thread["id"], [])
                for n, item in enumerate(items):
                    if item["type"] != "user_message":
                        continue
                    text = item["content"][0]["text"]
                    texts.append(text)
                    answered = n + 1 < len(items) and items[n + 1]["type"] == "assistant_message"
                    if text in known and not answered:
                        problems.append(f"{user} {thread['id']}: {text!r} has no answer")
            expected: dict[str, list[str]] = defaultdict(list)
            for thread_id, text in server.sent.acked.get(user, []):
                expected[thread_id].append(text)
            for thread_id, acked in expected.items():
                got = [t for t in stored.get(thread_id, []) if t in acked]
                if got != acked:
                    problems.append(f"{user} {thread_id}: acknowledged {acked}, stored {got}")
            for thread_id, text in server.sent.rejected.get(user, []):
                if stored.get(thread_id, []).count(text) > 1:
                    problems.append(f"{user}: rejected {text!r} stored more than once")
    return problems


def ratio(values: list[float]) -> str:
    return f"{statistics.median(values):.2f}x" if values else "-"


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=DSN)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--levels", default="4,16")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--pool-size", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="tiny run, for the test suite")
    args = parser.parse_args(argv)
    if args.smoke:
        args.workers, args.levels, args.seconds, args.rounds = 1, "2", 1.0, 1
    if shutil.which("wrk") is None:
        # `nox -s bench` runs every script; this one only where wrk is installed.
        print("bench/side_by_side.py: skipped, it needs wrk (Debian: apt-get install wrk)")
        return 0
    variants = [v for v in args.variants.split(",") if v]
    if unknown := set(variants) - set(VARIANTS):
        parser.error(f"unknown variants {sorted(unknown)}; choose from {VARIANTS}")
    variants = ["floor", *(v for v in variants if v != "floor")]  # the floor brackets the rest
    levels = [int(n) for n in args.levels.split(",") if n.strip()]

    sys.path[:0] = [str(BENCH), str(ROOT), str(ROOT / "src")]
    import _side_app

    run = uuid.uuid4().hex[:6]
    schemas = {v: f"ckside_{run}_{v}" for v in variants}
    servers: list[Running] = []
    samples: dict[tuple[str, int], list[Sample]] = defaultdict(list)
    floor_ratio_rps: dict[tuple[str, int], list[float]] = defaultdict(list)
    floor_ratio_cpu: dict[tuple[str, int], list[float]] = defaultdict(list)
    settled: list[float] = []
    wakeup_before = wakeup_cost()
    load_before = os.getloadavg()
    problems: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory() as work:
        work_dir = Path(work)
        try:
            for variant in variants:
                sqlite_path = str(work_dir / f"{variant}.db")
                await _side_app.prepare(variant, args.dsn, schemas[variant], sqlite_path)
                port = free_port()
                upload_dir = work_dir / f"uploads-{variant}"
                upload_dir.mkdir()
                env = {
                    **os.environ,
                    "SIDE_VARIANT": variant,
                    "DATABASE_URL": args.dsn,
                    "SQLITE_PATH": sqlite_path,
                    "UPLOAD_DIR": str(upload_dir),
                    "PUBLIC_URL": f"http://127.0.0.1:{port}",
                    "SIDE_SCHEMA": schemas[variant],
                    "LOAD_POOL_SIZE": str(args.pool_size),
                    "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")]),
                }
                command = [
                    sys.executable, "-m", "uvicorn", "--factory", "_side_app:create",
                    "--app-dir", str(BENCH), "--host", "127.0.0.1", "--port", str(port),
                    "--workers", str(args.workers), "--log-level", "warning", "--no-access-log",
                ]  # fmt: skip
                process = subprocess.Popen(command, env=env)  # noqa: ASYNC220 - starts, no wait
                servers.append(Running(variant, process, f"http://127.0.0.1:{port}", port))
            for server in servers:
                await wait_until_up(server, 600)  # spawning workers is slow on a busy machine

            def measure(server: Running, rnd: int, concurrency: int, n: int) -> Sample:
                settled.append(settle())
                sample = run_wrk(
                    server, concurrency, args.seconds,
                    f"{run}{rnd}c{concurrency}{server.variant}{n}", work_dir,
                )  # fmt: skip
                samples[(server.variant, concurrency)].append(sample)
                return sample

            floor_server, *others = servers
            for rnd in range(args.rounds):
                for concurrency in levels:
                    before = measure(floor_server, rnd, concurrency, 0)
                    for n, server in enumerate(others, 1):
                        sample = measure(server, rnd, concurrency, n)
                        after = measure(floor_server, rnd, concurrency, n)
                        rps = (before.rps + after.rps) / 2
                        cpu_ms = (before.cpu_ms + after.cpu_ms) / 2
                        if rps and cpu_ms:
                            key = (server.variant, concurrency)
                            floor_ratio_rps[key].append(sample.rps / rps)
                            floor_ratio_cpu[key].append(sample.cpu_ms / cpu_ms)
                        before = after
            for server in servers:
                if server.variant in SHARED_STORE:
                    problems[server.variant] = await check_data(server)
        finally:
            for server in servers:
                server.process.terminate()
            for server in servers:
                try:
                    server.process.wait(30)
                except subprocess.TimeoutExpired:
                    server.process.kill()
            conn = await asyncpg.connect(args.dsn)
            try:
                for schema in schemas.values():
                    await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            finally:
                await conn.close()
    load_after = os.getloadavg()
    wakeup_after = wakeup_cost()

    all_samples = [s for group in samples.values() for s in group]
    wall = sum(s.seconds for s in all_samples)
    other = sum(s.other_cpu for s in all_samples)
    print(
        f"\nbench/side_by_side.py: {args.workers} uvicorn workers per server (uvloop + httptools),"
        f" wrk -t C -c C with bench/mix.lua, {args.seconds:g} s per run, {args.rounds} rounds;"
        f" medians over runs, ratios are medians of ratios to the mean of the floor runs just"
        f" before and after each run; pools of"
        f" {args.pool_size} connections per worker (SQLAlchemy max_overflow"
        f" {os.environ.get('LOAD_MAX_OVERFLOW', '0')})"
    )
    print(
        f"machine: {os.cpu_count()} CPUs; load average {load_before[0]:.1f} before, "
        f"{load_after[0]:.1f} after; other processes used {other / wall if wall else 0:.2f} "
        f"CPUs on average during the runs; before each run it waited for the machine to be"
        f" quiet again, {statistics.median(settled) if settled else 0:.1f} s (median),"
        f" {max(settled, default=0):.1f} s at most"
    )
    print(
        f"one round trip between two threads over a socket pair (two wakeups) cost"
        f" {wakeup_before:.0f} us of CPU before the runs, {wakeup_after:.0f} us after"
    )
    for concurrency in levels:
        floors = [s.rps for s in samples[("floor", concurrency)]]
        if floors:
            print(
                f"floor runs at {concurrency} clients: {min(floors):.0f}-{max(floors):.0f} req/s"
                f" over {len(floors)} runs"
            )
    header = (
        f"{'server':<42} {'C':>3} {'req/s':>7} {'vs floor':>8} {'CPU ms/req':>10} "
        f"{'vs floor':>8} {'p50 ms':>7} {'p99 ms':>7} {'wrk CPU ms/req':>14} {'errors':>6}"
    )
    print(header)
    print("-" * len(header))
    for concurrency in levels:
        for variant in variants:
            group = samples[(variant, concurrency)]
            if not group:
                continue
            key = (variant, concurrency)
            requests = sum(s.requests for s in group)
            wrk_ms = 1000 * sum(s.wrk_cpu for s in group) / requests if requests else 0.0
            errors = sum(s.errors + s.s5xx + s.s4xx for s in group)
            print(
                f"{LABELS[variant]:<42} {concurrency:>3} "
                f"{statistics.median(s.rps for s in group):>7.1f} "
                f"{'1.00x' if variant == 'floor' else ratio(floor_ratio_rps[key]):>8} "
                f"{statistics.median(s.cpu_ms for s in group):>10.2f} "
                f"{'1.00x' if variant == 'floor' else ratio(floor_ratio_cpu[key]):>8} "
                f"{statistics.median(s.p50_ms for s in group):>7.1f} "
                f"{statistics.median(s.p99_ms for s in group):>7.1f} "
                f"{wrk_ms:>14.3f} {errors:>6}"
            )
    total_problems = 0
    print()
    for server in servers:
        acked = sum(len(v) for v in server.sent.acked.values())
        rejected = sum(len(v) for v in server.sent.rejected.values())
        if server.variant not in problems:
            print(f"data check {server.variant}: skipped (a store per worker); {acked} acked")
            continue
        found = problems[server.variant]
        total_problems += len(found)
        print(
            f"data check {server.variant}: {acked} acknowledged messages stored once, in order, "
            f"answered unless listed; {rejected} rejected; {len(found)} problems"
        )
        for problem in found[:10]:
            print(f"  {problem}")
    print(json.dumps({"problems": total_problems}))
    return 1 if total_problems else 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
