"""Gunicorn settings for the web process: ``gunicorn -c deploy/gunicorn.conf.py instrumentshare.wsgi:application``.

Every value can be changed from the environment, so the image, the systemd unit, compose and
Kubernetes all use this one file. Plain Python with no import of gunicorn, so a test can load it
with ``runpy`` where gunicorn is not installed.
"""

from __future__ import annotations

import os


def _int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def _cpu_count() -> int:
    # The CPUs this process may run on (a cgroup cpuset, taskset), not every CPU of the host.
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# --- where and how many ------------------------------------------------------------------------
# 127.0.0.1 behind a local nginx (systemd); the image sets 0.0.0.0:8000 so that nginx, the
# ingress and the probes reach it from other containers.
bind = [address.strip() for address in os.environ.get("GUNICORN_BIND", "127.0.0.1:8000").split(",") if address.strip()]
# WEB_CONCURRENCY is the name gunicorn itself and most platforms use; else 2 x CPUs + 1.
workers = _int("WEB_CONCURRENCY", 2 * _cpu_count() + 1)
# 1 thread: the sync worker, with nginx buffering slow clients. More threads switch to gthread.
threads = _int("GUNICORN_THREADS", 1)
worker_class = "gthread" if threads > 1 else "sync"
proc_name = "instrumentshare-web"

# --- timeouts ------------------------------------------------------------------------------------
# A request still running after `timeout` seconds gets its worker killed and restarted. Keep it
# below nginx's proxy_read_timeout (60 s) so the log names the worker, not just a 504.
timeout = _int("GUNICORN_TIMEOUT", 30)
# Time given to in-flight requests on SIGTERM/HUP before workers are killed. The systemd unit's
# TimeoutStopSec and the pod's terminationGracePeriodSeconds are longer than this.
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)
keepalive = _int("GUNICORN_KEEPALIVE", 5)

# --- recycling -------------------------------------------------------------------------------------
# Restart each worker after about this many requests (bounds slow leaks); the jitter keeps the
# workers from all restarting at the same moment.
max_requests = _int("GUNICORN_MAX_REQUESTS", 1000)
max_requests_jitter = _int("GUNICORN_MAX_REQUESTS_JITTER", 100)

# --- behind a proxy -------------------------------------------------------------------------------
# Whose X-Forwarded-Proto/-For is believed. 127.0.0.1 for a local nginx; compose and Kubernetes
# set "*" because only nginx or the ingress can reach the web port there.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
secure_scheme_headers = {"X-FORWARDED-PROTO": "https"}

# --- logs: both to stdout/stderr, for journald or the container runtime -----------------------
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# One JSON-ish object per request (values are not escaped, hence "-ish"). The request id is the
# one the app sends back in X-Request-ID: nginx's $request_id, or a fresh one.
access_log_format = (
    '{"time": "%(t)s", "logger": "gunicorn.access", "request_id": "%({x-request-id}o)s", '
    '"remote": "%(h)s", "forwarded_for": "%({x-forwarded-for}i)s", "method": "%(m)s", "path": "%(U)s", '
    '"query": "%(q)s", "status": "%(s)s", "bytes": "%(b)s", "duration_ms": "%(M)s", '
    '"referer": "%(f)s", "user_agent": "%(a)s"}'
)

# --- process details ------------------------------------------------------------------------------
# The heartbeat file on tmpfs: a disk-backed /tmp can stall workers (gunicorn's FAQ).
_SHM = "/dev/shm"  # noqa: S108 - tmpfs for a heartbeat file, not a shared temporary file
worker_tmp_dir = _SHM if os.path.isdir(_SHM) else None
# No control socket (gunicorn 25.1+ creates one under $HOME): HUP, TTIN and TTOU do the same, and
# the container's root filesystem is read-only.
control_socket_disable = True
# Load the app in each worker, after the fork: no database connection is shared between workers,
# and a HUP reloads new code.
preload_app = False
