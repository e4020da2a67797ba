"""An iterator whose next item is produced by a thread of its own while the caller
works on the current one.

Reading a store (DuckDB's Parquet scan, a database cursor, an object fetch) and
transforming what was read both run without Python's lock for most of their time, so on
more than one core the two overlap. One item is held ready at most, so the memory a
reader holds grows by one item, whatever the length of the stream.
"""

from __future__ import annotations

import contextlib
import contextvars
import queue
import threading
from collections.abc import Generator, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

# How often a blocked hand-off looks whether the consumer stopped.
_POLL_S = 0.05


def read_ahead(items: Iterator[T], *, name: str) -> Generator[T, None, None]:
    """``items``, each produced by a thread named ``name`` while the caller has the one
    before. The thread starts with the first ``next`` and runs in a copy of the
    caller's context (its request id, deadline and tracing). An exception raised by
    ``items`` is raised to the caller in its turn. Closing the iterator stops the
    thread after the item it is producing, and ``items`` is closed on that thread: an
    iterator is only ever touched by one thread."""
    ready: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def hand_over(entry: tuple[bool, Any]) -> bool:
        while not stop.is_set():
            with contextlib.suppress(queue.Full):
                ready.put(entry, timeout=_POLL_S)
                return True
        return False

    def produce() -> None:
        try:
            for item in items:
                if not hand_over((True, item)):
                    return
            hand_over((False, None))
        except BaseException as exc:  # handed to the consumer, raised there
            hand_over((False, exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    context = contextvars.copy_context()
    worker = threading.Thread(target=context.run, args=(produce,), name=name, daemon=True)
    worker.start()
    try:
        while True:
            more, item = ready.get()
            if not more:
                if item is not None:
                    raise item
                return
            yield item
    finally:
        stop.set()
        worker.join()
