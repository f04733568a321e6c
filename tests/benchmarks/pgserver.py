"""A PostgreSQL server of the benchmarks' own, configured by ``deploy/postgresql.conf``.

The figures should describe our code on a server set up for this workload, not whatever the
machine's shared server happens to be configured with (a stock server has 128 MB of shared
buffers: a month's reconciliation then spends most of its time evicting dirty pages). So, unless
``BENCH_DATABASE_URL`` names a server, ``make bench`` runs ``initdb`` into ``var/bench/pgdata``,
starts that cluster on a free local port with the project's settings file, and stops it at the
end. The binaries are the installed PostgreSQL's (``pg_config --bindir``); nothing is downloaded.
PostgreSQL refuses to run as root: as root, the server runs as the ``postgres`` system user.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = ROOT / "deploy" / "postgresql.conf"


def bindir() -> Path | None:
    """Where initdb and pg_ctl are, or None when no PostgreSQL server is installed."""
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        found = Path(subprocess.run(["pg_config", "--bindir"], check=True, capture_output=True,
                                    text=True).stdout.strip())
        if (found / "initdb").exists() and (found / "pg_ctl").exists():
            return found
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).resolve().parent
    # Debian's server package without libpq-dev (no pg_config): the newest version installed.
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return found[-1].parent if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """``with Server(datadir) as url:`` a running cluster; ``keep`` leaves its data for ``--reuse``."""

    def __init__(self, datadir: Path, *, reuse: bool = False, log=print):
        self.datadir = datadir
        self.reuse = reuse
        self.log = log
        self.bin = bindir()
        self.port = _free_port()
        self.user = None
        if os.geteuid() == 0:
            self.user = pwd.getpwnam("postgres")
            if not self._reachable(datadir.parent):
                # A checkout under a directory the postgres user cannot enter (a private temporary
                # directory, say): keep the cluster in the system's temporary directory instead,
                # under a fixed name when it is to be reused, else in a directory of its own.
                if reuse:
                    self.datadir = Path(tempfile.gettempdir()) / "instrumentshare-bench-pgdata"
                else:
                    own = Path(tempfile.mkdtemp(prefix="instrumentshare-bench-"))
                    own.chmod(0o755)
                    self.datadir = own / "pgdata"

    def _reachable(self, directory: Path) -> bool:
        directory.mkdir(parents=True, exist_ok=True)
        return subprocess.run(["runuser", "-u", self.user.pw_name, "--", "test", "-x", str(directory)],
                              capture_output=True).returncode == 0

    def _run(self, *args: str) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if self.user is not None:
            command = ["runuser", "-u", self.user.pw_name, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode:
            raise RuntimeError(f"{args[0]} failed ({result.returncode}): {(result.stderr or result.stdout)[-800:]}")

    def _initdb(self) -> None:
        if self.datadir.exists():
            shutil.rmtree(self.datadir)
        self.datadir.mkdir(parents=True)
        if self.user is not None:
            os.chown(self.datadir, self.user.pw_uid, self.user.pw_gid)
        self.datadir.chmod(0o700)
        self._run("initdb", "-D", str(self.datadir), "-U", "postgres", "--auth=trust", "--encoding=UTF8",
                  "--locale=C.UTF-8", "--no-instructions")
        # The project's settings, copied in (the server may not be able to read the checkout).
        local = self.datadir / "instrumentshare.conf"
        local.write_text(SETTINGS.read_text())
        with (self.datadir / "postgresql.conf").open("a") as conf:
            conf.write("\ninclude = 'instrumentshare.conf'\nlisten_addresses = '127.0.0.1'\n"
                       "unix_socket_directories = ''\n")
        if self.user is not None:
            os.chown(local, self.user.pw_uid, self.user.pw_gid)

    def __enter__(self) -> str:
        if self.bin is None:
            raise RuntimeError("no PostgreSQL server is installed here (pg_config --bindir, initdb): "
                               "set BENCH_DATABASE_URL to a server's database")
        fresh = not (self.reuse and (self.datadir / "PG_VERSION").exists())
        if fresh:
            self._initdb()
        self.log(f"starting a PostgreSQL server of the benchmarks' own on 127.0.0.1:{self.port} "
                 f"({'new' if fresh else 'kept'} cluster, settings from deploy/postgresql.conf)")
        self._run("pg_ctl", "-D", str(self.datadir), "-o", f"-p {self.port}", "-l",
                  str(self.datadir / "server.log"), "-w", "-t", "60", "start")
        return f"postgres://postgres@127.0.0.1:{self.port}/bench"

    def __exit__(self, *exc) -> None:
        with contextlib.suppress(RuntimeError):
            self._run("pg_ctl", "-D", str(self.datadir), "-m", "fast", "-w", "stop")
        if not self.reuse:
            shutil.rmtree(self.datadir, ignore_errors=True)
            if self.datadir.parent.name.startswith("instrumentshare-bench-"):
                shutil.rmtree(self.datadir.parent, ignore_errors=True)
