"""How many governed reads are prepared at once, in worker threads.

Preparing a read (authentication, plan, the scan's start, and the whole of a small
answer) is mostly Python: the threads take turns on one interpreter lock, and every
call into DuckDB, Arrow or the state database hands that lock to another waiting
thread. With many reads in flight on Starlette's shared pool (40 threads) those
hand-offs cost more CPU than the reads themselves; a few threads, about one per CPU,
keep the parallel parts (native code that releases the lock) and drop the rest.

Cheaper still is no hand-off: with ``inline`` on, a read is first tried on the event
loop itself, and moves to a worker thread only when it declines there (see
``connectors.inline``: it would load a file, build an index, reach a remote store or
stream a large answer).
"""

from __future__ import annotations

import asyncio
import os
import weakref
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
import anyio.to_thread

from connectors import NeedsWorkerThread, running_inline

T = TypeVar("T")


def default_read_threads() -> int:
    return max(2, os.cpu_count() or 1)


class ReadAbandoned(Exception):
    """The client went away while its read waited for a slot; the read never started."""


class ReadSlots:
    """A bound on reads running in worker threads at once; later ones queue in order."""

    def __init__(self, threads: int | None = None, *, inline: bool = False) -> None:
        self.threads = threads or default_read_threads()
        self.inline = inline
        # An anyio limiter belongs to the event loop that first waits on it; the app may
        # be served by more than one loop over its life (test clients start their own).
        self._limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.CapacityLimiter]
        self._limiters = weakref.WeakKeyDictionary()

    async def run(
        self,
        work: Callable[[], T],
        *,
        abandoned: Callable[[], Awaitable[bool]] | None = None,
        may_inline: bool = True,
    ) -> T:
        """``work()``, on the event loop when inline reads are on and ``may_inline``,
        until it declines; else in a worker thread once a slot is free. ``abandoned`` is
        asked when the slot comes: a client that left meanwhile costs no read (servers do
        not cancel a handler when its client disconnects)."""
        if self.inline and may_inline:
            try:
                with running_inline():
                    return work()
            except NeedsWorkerThread:
                pass  # nothing of it remains: run it again where it may wait
        loop = asyncio.get_running_loop()
        limiter = self._limiters.get(loop)
        if limiter is None:
            limiter = self._limiters[loop] = anyio.CapacityLimiter(self.threads)
        async with limiter:
            if abandoned is not None and await abandoned():
                raise ReadAbandoned
            return await anyio.to_thread.run_sync(work)
