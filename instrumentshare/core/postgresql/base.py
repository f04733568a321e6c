"""Django's PostgreSQL backend, with a connection health check that costs no round trip when idle.

``CONN_HEALTH_CHECKS`` makes Django check a persistent connection before the first query of each
request, by sending ``SELECT 1``: one more round trip in every request (on a booking, one of eleven).
A server that ends a connection (restart, ``pg_terminate_backend``, idle timeout) first writes to it (an
error message, then the end of the stream), so an idle connection with nothing to read has not been
ended: no query is needed to know it. When there is something to read, or the socket cannot be
asked, Django's own check (``SELECT 1``) decides, as before. A peer that vanished without a word (a
cut cable) is found by neither check before the query's own timeout.
``tests/resilience/test_database_restart.py`` terminates every connection under load and expects the
service to recover by itself; ``tests/test_postgresql_backend.py`` tests the check itself.
"""

from __future__ import annotations

import select

from django.db.backends.postgresql import base
from psycopg import pq


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self) -> bool:
        connection = self.connection
        if connection is None or connection.closed or connection.broken:
            return False
        try:
            readable, _writable, _failed = select.select([connection.fileno()], [], [], 0)
        except (OSError, ValueError):   # no socket to ask: let the query decide
            readable = True
        if readable or connection.info.transaction_status != pq.TransactionStatus.IDLE:
            return super().is_usable()
        return True

