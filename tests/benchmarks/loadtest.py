"""A bounded load test of the real stack: mixed traffic from a second process for a fixed time.

    python -m tests.benchmarks.loadtest --seconds 300 [--clients 8]

Needs PostgreSQL and Redis (DATABASE_URL/REDIS_URL point at the servers; it makes its own
database ``loadtest``). It migrates, loads the demo city, starts gunicorn and a Celery worker,
then runs search, availability, booking, cancel, feed and export requests from ``--clients``
threads for ``--seconds`` seconds (every loop bounded by that deadline, traffic only to
127.0.0.1). It prints throughput, p50/p99 per kind, errors (5xx and connection errors; must be
0) and each process's memory at the start and at the end, writes the figures as JSON under
var/bench/, and exits non-zero on any error or on memory growing past the allowance.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import requests

ROOT = Path(__file__).resolve().parents[2]
DB_NAME = "loadtest"
MEMORY_ALLOWANCE = 1.5  # end RSS may be at most 1.5 x start RSS + 30 MB (warm-up caches)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _database_url() -> str:
    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
    parts = urlsplit(base)
    return urlunsplit((parts.scheme, parts.netloc, f"/{DB_NAME}", "", ""))


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return 0
    return 0


def _family(pid: int) -> list[int]:
    pids = [pid]
    for child in Path("/proc").iterdir():
        if child.name.isdigit():
            try:
                if int((child / "stat").read_text().split()[3]) == pid:
                    pids.append(int(child.name))
            except (OSError, ValueError, IndexError):
                continue
    return pids


def _prepare(env: dict) -> None:
    admin = urlunsplit((*urlsplit(env["DATABASE_URL"])[:2], "/postgres", "", ""))
    import psycopg

    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        connection.execute(f"CREATE DATABASE {DB_NAME}")
    for command in (["migrate", "--noinput", "-v", "0"], ["seed_demo"]):
        subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT, env=env, check=True,
                       stdout=subprocess.DEVNULL)


class Traffic:
    def __init__(self, base: str, deadline: float):
        self.base, self.deadline = base, deadline
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.statuses: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        self.errors: list[str] = []
        self.lock = threading.Lock()

    def call(self, session: requests.Session, kind: str, method: str, path: str, **kwargs):
        started = time.perf_counter()
        try:
            response = session.request(method, self.base + path, timeout=30, **kwargs)
            status = response.status_code
        except requests.RequestException as error:
            response, status = None, -1
            with self.lock:
                self.errors.append(f"{kind}: {type(error).__name__}")
        elapsed = time.perf_counter() - started
        with self.lock:
            self.latencies[kind].append(elapsed)
            self.statuses[kind][status] += 1
            if status >= 500:
                self.errors.append(f"{kind}: {status} {path}")
        return response


def _token(base: str, username: str) -> dict:
    response = requests.post(f"{base}/api/v1/auth/token", json={"username": username, "password": "demo-2026"},
                             timeout=30)
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['token']}"}


def _client(traffic: Traffic, seed: int, context: dict) -> None:
    rng = random.Random(seed)  # noqa: S311 - traffic mix, not secrets
    session = requests.Session()
    mine: list[int] = []
    instruments = context["instruments"]
    while time.monotonic() < traffic.deadline:
        roll = rng.random()
        instrument = rng.choice(instruments)
        if roll < 0.3:
            traffic.call(session, "search", "GET", "/api/v1/instruments",
                         params={"q": rng.choice(["显微镜", "光谱", "质谱", "", "核磁"]), "page_size": 20})
        elif roll < 0.55:
            start = dt.datetime.now(dt.UTC) + dt.timedelta(days=rng.randint(1, 20))
            traffic.call(session, "availability", "GET", f"/api/v1/instruments/{instrument}/availability",
                         params={"start": start.isoformat(), "end": (start + dt.timedelta(days=7)).isoformat()})
        elif roll < 0.75:
            day = dt.date.today() + dt.timedelta(days=rng.randint(2, 40))
            local = dt.datetime.combine(day, dt.time(rng.choice([9, 10, 13, 14, 15])),
                                        tzinfo=dt.timezone(dt.timedelta(hours=8)))
            response = traffic.call(session, "book", "POST", "/api/v1/bookings", headers=context["researcher"],
                                    json={"instrument_id": instrument, "start": local.isoformat(),
                                          "end": (local + dt.timedelta(hours=1)).isoformat(), "purpose": "load"})
            if response is not None and response.status_code == 201:
                mine.append(response.json()["id"])
        elif roll < 0.85 and mine:
            traffic.call(session, "cancel", "POST", f"/api/v1/bookings/{mine.pop()}/cancel",
                         headers=context["researcher"], json={})
        elif roll < 0.95:
            traffic.call(session, "feed", "GET", context["feed_path"])
        else:
            traffic.call(session, "export", "GET", "/api/v1/billing/export", headers=context["finance"],
                         params={"period": context["period"], "format": "csv"})


def _start(env: dict, port: int, log_dir) -> tuple[subprocess.Popen, subprocess.Popen]:
    log_dir.mkdir(parents=True, exist_ok=True)
    web = subprocess.Popen([sys.executable, "-m", "gunicorn", "instrumentshare.wsgi:application", "-b",
                            f"127.0.0.1:{port}", "-w", "3", "--timeout", "60"], cwd=ROOT, env=env,
                           stdout=open(log_dir / "web.log", "w"), stderr=subprocess.STDOUT)  # noqa: SIM115
    worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "instrumentshare", "worker", "--pool=solo",
                               "-l", "warning"], cwd=ROOT, env=env,
                              stdout=open(log_dir / "worker.log", "w"), stderr=subprocess.STDOUT)  # noqa: SIM115
    return web, worker


def _stop(processes) -> None:
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


def _traffic_context(base: str) -> dict:
    """Wait for the server, then what the clients need: tokens, instruments, a feed, last month."""
    for _ in range(120):
        try:
            if requests.get(f"{base}/healthz", timeout=2).ok:
                break
        except requests.RequestException:
            time.sleep(0.5)
    researcher, finance = _token(base, "researcher"), _token(base, "finance")
    instruments = [i["id"] for i in requests.get(f"{base}/api/v1/instruments", params={"page_size": 100},
                                                 timeout=30).json()["items"]]
    feed = requests.post(f"{base}/api/v1/me/feeds", headers=researcher, json={"scope": "mine"}, timeout=30)
    period = (dt.date.today().replace(day=1) - dt.timedelta(days=1)).strftime("%Y-%m")
    return {"researcher": researcher, "finance": finance, "instruments": instruments,
            "feed_path": urlsplit(feed.json()["url"]).path, "period": period}


def _memory(processes: dict) -> dict:
    return {name: sum(_rss_kb(pid) for pid in _family(process.pid)) for name, process in processes.items()}


def _drive(base: str, context: dict, *, clients: int, seconds: int) -> tuple[Traffic, float]:
    started = time.monotonic()
    traffic = Traffic(base, deadline=started + seconds)
    threads = [threading.Thread(target=_client, args=(traffic, n, context)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 120)
    return traffic, time.monotonic() - started


def _report(traffic: Traffic, elapsed: float, clients: int, memory_start: dict, memory_end: dict) -> dict:
    total = sum(len(values) for values in traffic.latencies.values())
    report = {"seconds": round(elapsed, 1), "clients": clients, "requests": total,
              "throughput_per_s": round(total / elapsed, 1), "errors": len(traffic.errors), "kinds": {},
              "memory_kb": {name: {"start": memory_start[name], "end": memory_end[name]} for name in memory_start}}
    print(f"\n{'kind':<14}{'count':>8}{'p50 ms':>10}{'p99 ms':>10}  statuses")
    for kind, values in sorted(traffic.latencies.items()):
        values = sorted(values)
        p50 = statistics.median(values) * 1000
        p99 = values[min(len(values) - 1, int(len(values) * 0.99))] * 1000
        statuses = dict(sorted(traffic.statuses[kind].items()))
        report["kinds"][kind] = {"count": len(values), "p50_ms": round(p50, 1), "p99_ms": round(p99, 1),
                                 "statuses": statuses}
        print(f"{kind:<14}{len(values):>8}{p50:>10.1f}{p99:>10.1f}  {statuses}")
    print(f"\n{total} requests in {elapsed:.0f} s = {total / elapsed:.1f}/s, errors: {len(traffic.errors)}")
    return report


def _memory_grew(report: dict) -> list[str]:
    grew = []
    for name, figures in report["memory_kb"].items():
        print(f"memory {name}: {figures['start'] / 1024:.0f} MB at the start, {figures['end'] / 1024:.0f} MB "
              f"at the end")
        if figures["end"] > figures["start"] * MEMORY_ALLOWANCE + 30 * 1024:
            grew.append(name)
    return grew


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=300)
    parser.add_argument("--clients", type=int, default=8)
    options = parser.parse_args(argv)
    env = {**os.environ, "DATABASE_URL": _database_url(), "RATE_LIMIT_BOOKINGS": "100000/m",
           "RATE_LIMIT_EXPORTS": "100000/m", "INSTRUMENTSHARE_VAR_DIR": str(ROOT / "var" / "loadtest")}
    env.setdefault("REDIS_URL", "redis://127.0.0.1:6379/14")
    print(f"preparing database {DB_NAME} with the demo city…", flush=True)
    _prepare(env)
    port = _free_port()
    web, worker = _start(env, port, ROOT / "var" / "loadtest")
    processes = {"gunicorn": web, "celery worker": worker}
    base = f"http://127.0.0.1:{port}"
    try:
        context = _traffic_context(base)
        memory_start = _memory(processes)
        traffic, elapsed = _drive(base, context, clients=options.clients, seconds=options.seconds)
        memory_end = _memory(processes)
    finally:
        _stop((web, worker))
    report = _report(traffic, elapsed, options.clients, memory_start, memory_end)
    grew = _memory_grew(report)
    out = ROOT / "var" / "bench" / f"loadtest-{dt.datetime.now():%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(f"written to {out.relative_to(ROOT)}")
    if traffic.errors:
        print("errors:", traffic.errors[:20])
    if grew:
        print("memory grew beyond the allowance:", grew)
    return 1 if traffic.errors or grew else 0


if __name__ == "__main__":
    sys.exit(main())
