"""The benchmark harness: results, timing, the raw psycopg connection, the table and the JSON file.

Each benchmark module (``bench_*.py``) has ``run(ctx) -> list[Result]``. It does the same work
twice: through our code, and as the raw limit (the fewest SQL statements doing that work,
through psycopg directly), and reports both with their ratio. Figures are reported, never
asserted: the table says which targets are met.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ACTIVE_STATES = ("pending", "confirmed", "completed", "no_show")


@dataclass
class Result:
    figure: str
    value: float | None
    unit: str
    raw: float | None = None
    target: str = ""
    met: bool | None = None
    # "higher": throughput (ratio = ours / raw, 1.0 is the limit); "lower": a time (ratio = ours / raw).
    better: str = "lower"
    note: str = ""
    details: dict = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.raw:
            return None
        return self.value / self.raw

    def as_dict(self) -> dict:
        return {**dataclasses.asdict(self), "ratio": self.ratio}


@dataclass
class Context:
    """What every benchmark gets: the scale, the city's 'now', and a raw connection when on PostgreSQL."""

    scale: str  # smoke, quick, full
    anchor: dt.datetime
    postgres: bool
    conninfo: str | None
    redis_url: str | None
    output_dir: Path
    seed: int = 1
    env: dict = field(default_factory=dict)  # for subprocesses (gunicorn, the worker, the export)
    log: Callable[[str], None] = print

    def size(self, smoke: int, quick: int, full: int) -> int:
        return {"smoke": smoke, "quick": quick}.get(self.scale, full)

    def raw_connection(self, **kwargs):
        import psycopg

        return psycopg.connect(self.conninfo, **kwargs)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def timed(function: Callable, repeat: int, *, warmup: int = 2) -> list[float]:
    """Milliseconds of each of ``repeat`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append((time.perf_counter() - started) * 1000)
    return times


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def pending(figure: str, target: str, why: str) -> Result:
    return Result(figure=figure, value=None, unit="", target=target, note=f"pending: {why}")


def skipped(figure: str, target: str, why: str) -> Result:
    return Result(figure=figure, value=None, unit="", target=target, note=f"skipped: {why}")


def _format(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".strip()


def table(results: list[Result]) -> str:
    headers = ["figure", "value", "raw limit", "ratio", "target", "met?"]
    rows = []
    for result in results:
        ratio = result.ratio
        met = {True: "yes", False: "NO", None: "—"}[result.met]
        value = _format(result.value, result.unit) if result.value is not None else result.note or "—"
        rows.append([result.figure, value, _format(result.raw, result.unit), f"{ratio:.2f}" if ratio else "—",
                     result.target, met])
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |",
             "| " + " | ".join("-" * w for w in widths) + " |"]
    lines += ["| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in rows]
    return "\n".join(lines)


def machine() -> dict:
    info = {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
            "load_average": os.getloadavg()}
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            names = [line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")]
        info["cpu"] = names[0] if names else ""
        with open("/proc/meminfo") as meminfo:
            info["memory_gb"] = round(int(meminfo.readline().split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return info


def write_json(results: list[Result], *, ctx: Context, extra: dict) -> Path:
    ctx.output_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = ctx.output_dir / f"{stamp}.json"
    data = {"when": stamp, "scale": ctx.scale, "machine": machine(), "anchor": ctx.anchor.isoformat(), **extra,
            "results": [result.as_dict() for result in results]}
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str))
    return path


# --- CPU time of process trees (Linux /proc) --------------------------------------------------------

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            text = stat.read()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: the fields start after the last ')'.
    return [text[text.index("(") + 1:text.rindex(")")], *text[text.rindex(")") + 2:].split()]


def tree_cpu_seconds(root: int) -> float | None:
    """User + system CPU seconds of ``root`` and every live descendant, plus their reaped children's.

    A worker that exited (gunicorn's max_requests) is counted in its parent's cutime/cstime once the
    parent waited for it. None when /proc does not show ``root``.
    """
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    try:
        pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return None
    for pid in pids:
        fields = _stat(pid)
        if fields is None:
            continue
        # fields[0] is comm, [1] state, [2] ppid; utime, stime, cutime, cstime are [12]..[15].
        parents[pid] = int(fields[2])
        times[pid] = sum(int(value) for value in fields[12:16]) / _TICKS
    if root not in times:
        return None
    total, stack = 0.0, [root]
    children: dict[int, list[int]] = {}
    for pid, parent in parents.items():
        children.setdefault(parent, []).append(pid)
    while stack:
        pid = stack.pop()
        total += times.get(pid, 0.0)
        stack.extend(children.get(pid, []))
    return total


def wait_until_idle(root: int, *, settle: float = 0.5, timeout: float = 60.0) -> float:
    """Wait until the process tree of ``root`` stops using CPU (less than 20 ms in ``settle`` seconds):
    gunicorn answers its first request when one worker is up, while the others may still be importing
    the application; CPU per request measured then would count their start. Returns the seconds waited."""
    started = time.monotonic()
    previous = tree_cpu_seconds(root)
    while time.monotonic() - started < timeout:
        time.sleep(settle)
        current = tree_cpu_seconds(root)
        if previous is None or current is None or current - previous < 0.02:
            break
        previous = current
    return time.monotonic() - started


def calibration_ms(rounds: int = 5) -> float:
    """Milliseconds of CPU for a fixed piece of plain Python (JSON, SHA-256, sorting, dicts), the fastest
    of ``rounds``: the speed of this machine at this moment. On a shared virtual machine CPU per request
    moves by a third from one run to the next with the host's load; this figure moves with it, so runs
    can be compared through it."""
    import hashlib

    payload = [{"id": index, "name": f"instrument {index}", "minutes": [index % 60, index % 7]}
               for index in range(2000)]
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        for _repeat in range(5):
            text = json.dumps(payload, sort_keys=True)
            hashlib.sha256(text.encode()).hexdigest()
            rows = json.loads(text)
            rows.sort(key=lambda row: (row["minutes"][1], row["name"]))
            {row["name"]: row for row in rows}  # noqa: B018 - part of the fixed work
        best = min(best, (time.process_time() - started) * 1000)
    return best


def postgres_server_pid(conn) -> int | None:
    """The postmaster's pid when the server of ``conn`` runs on this machine, in this pid namespace."""
    backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    fields = _stat(backend)
    if fields is None or "postgres" not in fields[0] and "postmaster" not in fields[0]:
        return None
    parent = int(fields[2])
    parent_fields = _stat(parent)
    if parent_fields is None or "postgres" not in parent_fields[0] and "postmaster" not in parent_fields[0]:
        return None
    return parent
