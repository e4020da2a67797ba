"""Work tried on the server's event loop, and how work that would wait there declines.

A small read of a warm local file is pure computation: run on the event loop it costs no
thread hand-off, which on a busy server is a large share of the whole request. The
same read turns slow when it must first load a file, index a dataset or reach a remote
store, and the loop would stall every connection meanwhile. Code that is about to do
such work calls :func:`decline_inline`; when it runs on the loop, that raises
:class:`NeedsWorkerThread` and the caller runs the whole request again in a worker
thread. Everything such a request did before declining must be undone on the way out,
as it is for any exception.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_on_event_loop: ContextVar[bool] = ContextVar("kiteline_on_event_loop", default=False)


class NeedsWorkerThread(BaseException):  # noqa: N818 - a signal, not an error
    """Raised by work tried on the event loop that would wait (load, index, network).

    A BaseException, like GeneratorExit: it is control flow, so handlers that turn an
    Exception into an audited refusal or a 500 must let it pass."""


def is_inline() -> bool:
    """True when running on the event loop (inside ``running_inline``)."""
    return _on_event_loop.get()


def decline_inline(reason: str) -> None:
    """Raise NeedsWorkerThread when running on the event loop; otherwise nothing."""
    if _on_event_loop.get():
        raise NeedsWorkerThread(reason)


@contextmanager
def running_inline() -> Iterator[None]:
    """Mark the code inside as running on the event loop."""
    token = _on_event_loop.set(True)
    try:
        yield
    finally:
        _on_event_loop.reset(token)
