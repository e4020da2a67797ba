"""Reads run in a few worker threads at once; the rest wait their turn."""

from __future__ import annotations

import asyncio
import threading

from connectors.inline import decline_inline
from gateway.read.slots import ReadAbandoned, ReadSlots, default_read_threads


def test_no_more_reads_run_at_once_than_there_are_slots():
    slots = ReadSlots(2)
    running = 0
    most = 0
    lock = threading.Lock()
    release = threading.Event()

    def work() -> str:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        release.wait(5)
        with lock:
            running -= 1
        return threading.current_thread().name

    async def main() -> list[str]:
        tasks = [asyncio.create_task(slots.run(work)) for _ in range(6)]
        await asyncio.sleep(0.2)
        with lock:
            started = running
        release.set()
        names = await asyncio.gather(*tasks)
        assert started == 2
        return names

    names = asyncio.run(main())
    assert most == 2
    assert len(names) == 6
    assert threading.current_thread().name not in names  # never on the event loop


def test_slots_serve_one_event_loop_after_another():
    # A test client, like a restarted server, brings its own event loop.
    slots = ReadSlots(1)
    assert asyncio.run(slots.run(lambda: 1)) == 1
    assert asyncio.run(slots.run(lambda: 2)) == 2


def test_the_default_is_one_slot_per_cpu_and_at_least_two():
    assert ReadSlots().threads == default_read_threads() >= 2


def test_a_read_abandoned_while_queued_never_runs():
    slots = ReadSlots(1)
    ran: list[str] = []

    async def gone() -> bool:
        return True

    async def main() -> None:
        try:
            await slots.run(lambda: ran.append("read"), abandoned=gone)
        except ReadAbandoned:
            ran.append("abandoned")
        await slots.run(lambda: ran.append("next"))  # the slot was given back

    asyncio.run(main())
    assert ran == ["abandoned", "next"]


def place() -> str:
    """Where the caller runs: on an event loop, or in a worker thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return "worker"
    return "loop"


def test_inline_work_runs_on_the_event_loop_until_it_declines():
    slots = ReadSlots(1, inline=True)
    attempts: list[str] = []

    def declines_on_the_loop() -> str:
        attempts.append(place())
        decline_inline("it would wait")
        return place()

    async def main() -> tuple[str, str, str]:
        return (
            await slots.run(place),
            await slots.run(place, may_inline=False),
            await slots.run(declines_on_the_loop),
        )

    assert asyncio.run(main()) == ("loop", "worker", "worker")
    assert attempts == ["loop", "worker"]
    assert asyncio.run(ReadSlots(1).run(place)) == "worker"  # inline is off by default
