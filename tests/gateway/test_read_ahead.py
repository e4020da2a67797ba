"""The read-ahead iterator: the next item is made on another thread while the caller
holds this one, errors arrive in their turn, and closing stops and closes the source on
the thread that drove it."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator

import pytest

from gateway.read_ahead import read_ahead

WAIT_S = 5.0
_request: contextvars.ContextVar[str] = contextvars.ContextVar("test_request", default="none")


def test_items_arrive_in_order_and_complete() -> None:
    assert list(read_ahead(iter(range(100)), name="t")) == list(range(100))
    assert list(read_ahead(iter(()), name="t")) == []


def test_the_next_item_is_made_while_the_caller_holds_this_one() -> None:
    second_started = threading.Event()

    def items() -> Iterator[int]:
        yield 1
        second_started.set()
        yield 2

    ahead = read_ahead(items(), name="t")
    assert next(ahead) == 1
    # Without a thread of its own, the second item is only started by the next ``next``.
    assert second_started.wait(WAIT_S)
    assert list(ahead) == [2]


def test_items_are_made_on_the_named_thread_in_the_callers_context() -> None:
    seen: list[tuple[str, str]] = []

    def items() -> Iterator[int]:
        for i in range(3):
            seen.append((threading.current_thread().name, _request.get()))
            yield i

    token = _request.set("request-7")
    try:
        assert list(read_ahead(items(), name="kiteline-test-ahead")) == [0, 1, 2]
    finally:
        _request.reset(token)
    assert seen == [("kiteline-test-ahead", "request-7")] * 3


def test_an_error_arrives_after_the_items_before_it() -> None:
    def items() -> Iterator[int]:
        yield 1
        yield 2
        raise LookupError("the store went away")

    ahead = read_ahead(items(), name="t")
    assert next(ahead) == 1
    assert next(ahead) == 2
    with pytest.raises(LookupError, match="the store went away"):
        next(ahead)


def test_closing_early_stops_the_thread_and_closes_the_source_on_it() -> None:
    produced: list[int] = []
    closed_on: list[str] = []

    def items() -> Iterator[int]:
        try:
            for i in range(1_000_000):
                produced.append(i)
                yield i
        finally:
            closed_on.append(threading.current_thread().name)

    before = {t.name for t in threading.enumerate()}
    ahead = read_ahead(items(), name="kiteline-test-close")
    assert next(ahead) == 0
    ahead.close()
    # Closed once close returns: a pooled connection is back before the caller goes on.
    assert closed_on == ["kiteline-test-close"]
    # At most the held item, the one queued and the one in the making were produced.
    assert len(produced) <= 3
    assert "kiteline-test-close" not in {t.name for t in threading.enumerate()} - before


def test_a_source_that_fails_to_start_is_raised_at_the_first_next() -> None:
    def items() -> Iterator[int]:
        raise OSError("no such object")
        yield 0  # pragma: no cover - makes this a generator

    with pytest.raises(OSError, match="no such object"):
        next(read_ahead(items(), name="t"))
