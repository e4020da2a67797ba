"""Bulk transfer through Arrow Flight: governed rows vs the same rows as an IPC file.

Subject: a real ``kiteline serve`` with ``flight.enabled``; a ``pyarrow.flight`` client
asks ``GetFlightInfo`` for four columns over every row of the large workspace (an
employee under a pseudonymized grant: ``identifier`` becomes a keyed pseudonym), then
reads the ticket with ``DoGet`` into a table: the whole governed read (decision,
budget, audit, transforms, digest) over loopback. Baseline: the very rows the governed
read returned, written once to an Arrow IPC file and served by a plain Flight server
(another process, ``python -m bench.flight --serve-file``) that streams the file's
batches on ``DoGet``; the same client reads them into a table. Both warm (pseudonyms
cached by a first read, the file in the page cache), interleaved, median of
``REPEATS``. 10M rows (1M with ``--quick``). Target: governed <= 1.3x the file.
``flight.<n>.in_process`` is the same governed read in this process (``Gateway.read``,
every Arrow chunk consumed, bench/governed_read), no socket: what of the governed time
is the read itself rather than its transfer.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.flight as flight

from bench import common
from bench.common import DATA_DIR, LOOPBACK, LargeWorkspace, Result, Target
from bench.governed_read import governed_reader as in_process_reader
from bench.governed_read import open_gateway

COLUMNS = ("identifier", "event_date", "category", "amount")
REPEATS = 3
TARGET = Target("ratio", "<=", 1.3)
FULL_ROWS = 10_000_000
QUICK_ROWS = 1_000_000


def rows() -> int:
    return QUICK_ROWS if common.quick() else FULL_ROWS


def flight_config(workspace: LargeWorkspace, port: int) -> Path:
    """The workspace's configuration with Flight on, beside the original."""
    path = workspace.root / "kiteline-flight.yaml"
    text = workspace.config_path.read_text(encoding="utf-8")
    path.write_text(
        text + f"\nflight:\n  enabled: true\n  listen: {LOOPBACK}:{port}\n", encoding="utf-8"
    )
    return path


def wait_for_flight(location: str, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the Flight server exited with {process.returncode}")
        try:
            with flight.connect(location) as client:
                client.wait_for_available(timeout=1)
                list(client.list_flights())
                return
        except (flight.FlightError, pa.ArrowException):
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"no Flight server at {location} after {timeout_s:.0f}s"
                ) from None
            time.sleep(0.2)


@contextmanager
def governed_server(workspace: LargeWorkspace) -> Iterator[str]:
    port, flight_port = common.free_port(), common.free_port()
    config = flight_config(workspace, flight_port)
    command = [
        sys.executable, "-m", "gateway.cli", "--config", str(config),
        "--log-level", "WARNING", "serve", "--port", str(port),
    ]  # fmt: skip
    log = DATA_DIR / "logs" / "flight_governed.log"
    with common.served(command, port=port, log_path=log, timeout_s=300.0):
        yield f"grpc+tcp://{LOOPBACK}:{flight_port}"


@contextmanager
def file_server(path: Path) -> Iterator[str]:
    port = common.free_port()
    location = f"grpc+tcp://{LOOPBACK}:{port}"
    command = [sys.executable, "-m", "bench.flight", "--serve-file", str(path), "--port", str(port)]
    log_path = DATA_DIR / "logs" / "flight_file.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=common.REPO_ROOT, stdout=log, stderr=log)
    try:
        wait_for_flight(location, process, 60)
        yield location
    finally:
        common.stop(process)


def governed_reader(location: str, workspace: LargeWorkspace) -> Callable[[], pa.Table]:
    command = orjson.dumps(
        {"dataset": workspace.dataset, "query": {"columns": list(COLUMNS), "limit": workspace.rows}}
    )
    call = flight.FlightCallOptions(
        headers=[(b"authorization", f"Bearer {workspace.token}".encode())], timeout=600
    )
    client = flight.connect(location)

    def read() -> pa.Table:
        info = client.get_flight_info(flight.FlightDescriptor.for_command(command), call)
        return client.do_get(info.endpoints[0].ticket, call).read_all()

    return read


def file_reader(location: str) -> Callable[[], pa.Table]:
    client = flight.connect(location)

    def read() -> pa.Table:
        return client.do_get(flight.Ticket(b"file")).read_all()

    return read


def _check(governed: pa.Table, plain: pa.Table, expected: int) -> None:
    if governed.num_rows != expected or plain.num_rows != expected:
        raise RuntimeError(f"expected {expected} rows, got {governed.num_rows}, {plain.num_rows}")
    if governed.column_names != list(COLUMNS):
        raise RuntimeError(f"unexpected columns {governed.column_names}")
    if not str(governed["identifier"][0]).startswith("p1_"):
        raise RuntimeError("the governed read returned raw identifiers")


def measure(count: int) -> dict[str, common.Timing]:
    workspace = common.large_workspace(f"governed_read_{count}", rows=count)
    with governed_server(workspace) as location:
        governed = governed_reader(location, workspace)
        first = governed()  # warms the pseudonyms; its rows are the baseline's file
        path = DATA_DIR / f"flight-{count}.arrow"
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, first.schema) as writer:
            writer.write_table(first)
        with file_server(path) as file_location:
            plain = file_reader(file_location)
            _check(first, plain(), count)
            del first
            gateway = open_gateway(workspace)
            try:
                return common.interleaved(
                    {
                        "governed": governed,
                        "file": plain,
                        "in process": in_process_reader(gateway, workspace),
                    },
                    repeats=REPEATS,
                    warmup=1,
                )
            finally:
                gateway.close()


def run() -> list[Result]:
    count = rows()
    timings = measure(count)
    label = f"{count // 1_000_000}M"
    governed, plain = timings["governed"], timings["file"]
    local = timings["in process"]
    print(f"  governed {governed.runs}, file {plain.runs}, in process {local.runs}", flush=True)
    return [
        Result(
            f"flight.{label}.governed",
            governed.median,
            "s",
            baseline=plain.median,
            target=TARGET,
            row="flight",
            note=(
                f"median of {REPEATS}; {count / governed.median / 1e6:.2f}M rows/s governed, "
                f"{count / plain.median / 1e6:.2f}M rows/s file; baseline = the same rows "
                "as an Arrow IPC file streamed by a plain Flight server"
            ),
        ),
        Result(
            f"flight.{label}.in_process",
            local.median,
            "s",
            baseline=plain.median,
            note=f"median of {REPEATS}; the same governed read by Gateway.read, no socket",
        ),
    ]


# -- the baseline's server ------------------------------------------------------------


class FileServer(flight.FlightServerBase):
    """Streams one Arrow IPC file's batches on any DoGet (memory-mapped, no transform)."""

    def __init__(self, location: str, path: Path) -> None:
        super().__init__(location)
        self._path = path

    def do_get(
        self, _context: flight.ServerCallContext, _ticket: flight.Ticket
    ) -> flight.FlightDataStream:
        source = pa.memory_map(str(self._path))
        reader = pa.ipc.open_file(source)
        batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
        return flight.GeneratorStream(reader.schema, batches)

    def list_flights(
        self, _context: flight.ServerCallContext, _criteria: bytes
    ) -> Iterator[flight.FlightInfo]:
        return iter(())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.flight")
    parser.add_argument("--serve-file", type=Path, help="serve this Arrow IPC file over Flight")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    if args.serve_file is not None:
        server = FileServer(f"grpc+tcp://{LOOPBACK}:{args.port}", args.serve_file)
        server.serve()
        return 0
    return common.run_and_print(run)


if __name__ == "__main__":
    sys.exit(main())
