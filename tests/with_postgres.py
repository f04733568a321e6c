"""``python -m tests.with_postgres``: the tests that need PostgreSQL, on a throwaway server of their own.

``make test`` runs the suite on the embedded default (SQLite), where the PostgreSQL-only tests are
skipped with their reason; then it runs this, so that those tests -- the SQL forms of the charge rules
and of reconciliation checked against the Python rules, the exclusion constraint against double
booking, exports made by the database, the upgrade of an older database, a restart under load --
run on every machine that has a PostgreSQL server installed (``scripts/ensure_system_packages.sh``
installs Debian's). The cluster is made with ``initdb`` in a temporary directory, started on a free
port with the project's ``deploy/postgresql.conf`` and removed at the end; nothing is downloaded.
Tests that also need Redis are skipped here with that reason (``.ci/run`` runs them with Redis).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.benchmarks.pgserver import Server, bindir

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str]) -> int:
    if bindir() is None:
        print("PostgreSQL-only tests skipped: no PostgreSQL server is installed here (initdb, pg_ctl); "
              "make test installs Debian's postgresql where it may")
        return 0
    with tempfile.TemporaryDirectory(prefix="instrumentshare-test-pg-") as scratch:
        os.chmod(scratch, 0o755)   # as root the server runs as the postgres user, who must enter it
        with Server(Path(scratch) / "pgdata", log=lambda line: print(line.replace("benchmarks'", "tests'"))) as url:
            env = {**os.environ, "DATABASE_URL": url.rsplit("/", 1)[0] + "/instrumentshare"}
            env.pop("REDIS_URL", None)
            command = [sys.executable, "-m", "pytest", "-m", "postgres", "-p", "no:cacheprovider", *argv]
            print("the PostgreSQL-only tests:", " ".join(command[1:]))
            return subprocess.run(command, cwd=ROOT, env=env).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
