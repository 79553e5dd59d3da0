"""The one entry point for SQL: ``await db.pool.do(fn, *args)`` runs ``fn(conn, *args)`` in a thread.

``fn`` gets a SQLAlchemy Connection inside a transaction (committed when it returns, rolled back
when it raises) and must return plain values — never ORM objects or result proxies. Transient
``OperationalError``s (a dropped PostgreSQL connection, a locked SQLite file) are retried with
backoff. The reactor thread never runs SQL.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import exc
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

log = logging.getLogger(__name__)
T = TypeVar("T")

_TRANSIENT_HINTS = (
    "database is locked",
    "server closed the connection",
    "connection refused",
    "could not connect",
    "terminating connection",
    "connection reset",
    "ssl connection has been closed",
    "deadlock detected",
    "could not serialize access",
)


def is_transient(error: exc.DBAPIError) -> bool:
    if getattr(error, "connection_invalidated", False):
        return True
    text = str(error.orig).lower() if error.orig is not None else str(error).lower()
    return any(hint in text for hint in _TRANSIENT_HINTS)


class DBThreadPool:
    retries = 5
    backoff = 0.05  # seconds, doubled per retry

    def __init__(self, engine: sa.Engine, reactor: Any, max_threads: int) -> None:
        self.engine = engine
        self._reactor = reactor
        self._threadpool = ThreadPool(minthreads=1, maxthreads=max_threads, name="watchline-db")
        self._running = False
        self._wait = threading.Event()  # never set: used for an interruptible backoff pause

    def start(self) -> None:
        if not self._running:
            self._threadpool.start()
            self._running = True

    async def stop(self) -> None:
        """Finish the queued and in-flight work, then join the threads (off the reactor thread)."""
        if self._running:
            self._running = False
            await deferToThreadPool(self._reactor, self._reactor.getThreadPool(), self._threadpool.stop)
            self.engine.dispose()

    async def do(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if not self._running:
            raise RuntimeError("database pool is not running")
        return await deferToThreadPool(self._reactor, self._threadpool, self._run, fn, args, kwargs)

    def do_blocking(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """For command-line tools with no reactor running: the same retries, on this thread."""
        return self._run(fn, args, kwargs)

    def _run(self, fn: Callable[..., T], args: tuple, kwargs: dict) -> T:
        delay = self.backoff
        for attempt in range(self.retries + 1):
            try:
                with self.engine.begin() as conn:
                    return fn(conn, *args, **kwargs)
            except exc.OperationalError as e:
                if attempt == self.retries or not is_transient(e):
                    raise
                log.warning("transient database error (attempt %d), retrying: %s", attempt + 1, e.orig)
                self._wait.wait(delay)
                delay *= 2
        raise AssertionError("unreachable")

