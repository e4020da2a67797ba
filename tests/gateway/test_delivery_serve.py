"""Delivery-time enforcement: offboarding cuts a live answer at the socket.

A raw socket reads a large JSON answer a few KB at a time from a real ``kiteline
serve``; an admin offboards the reader mid-stream, through the same process or through
a second process sharing the PostgreSQL state database. The client must stop getting
data within a second, see an incomplete chunked response, and the audit log must say
``complete: false`` with the bytes that left the server.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import httpx
import orjson
import pytest

from gateway.access.principals import issue_key
from gateway.config import load_config
from gateway.demo.workspace import Workspace, seed_state
from gateway.state.database import create_state_engine
from tests.conftest import copy_workspace
from tests.gateway.test_enforcement_serve import grant, seed_principal
from tests.serving import serving

pytestmark = pytest.mark.slow

READ_BYTES = 2048
READ_EVERY_S = 0.25  # 8 KB/s: a slow client
RECEIVE_BUFFER = 2048


@dataclass
class SlowReader:
    """A client that sends a query and reads the answer slowly, noting when bytes came."""

    url: str
    token: str
    received: list[tuple[float, bytes]] = field(default_factory=list)
    ended_by: str = ""

    def start(self, body: dict) -> threading.Thread:
        host, port = re.match(r"http://([^:]+):(\d+)", self.url).groups()  # type: ignore[union-attr]
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        sock.connect((host, int(port)))
        payload = orjson.dumps(body)
        sock.sendall(
            b"POST /v1/datasets/studies/query HTTP/1.1\r\nHost: x\r\n"
            b"Authorization: Bearer " + self.token.encode() + b"\r\n"
            b"Content-Type: application/json\r\nContent-Length: "
            + str(len(payload)).encode()
            + b"\r\n\r\n"
            + payload
        )
        thread = threading.Thread(target=self._read, args=(sock,), daemon=True)
        thread.start()
        return thread

    def _read(self, sock: socket.socket) -> None:
        sock.settimeout(30)
        try:
            while True:
                data = sock.recv(READ_BYTES)
                if not data:
                    self.ended_by = "eof"
                    return
                self.received.append((time.monotonic(), data))
                time.sleep(READ_EVERY_S)
        except ConnectionResetError:
            self.ended_by = "reset"
        except TimeoutError:
            self.ended_by = "timeout"
        finally:
            sock.close()

    @property
    def raw(self) -> bytes:
        return b"".join(data for _, data in self.received)

    def bytes_after(self, moment: float) -> int:
        return sum(len(data) for at, data in self.received if at > moment)


def body_of(raw: bytes) -> tuple[bytes, bool]:
    """The decoded body of a chunked response, and whether its terminating chunk came."""
    _, _, rest = raw.partition(b"\r\n\r\n")
    body = b""
    while rest:
        size_line, sep, rest = rest.partition(b"\r\n")
        if not sep:
            break
        size = int(size_line, 16)
        if size == 0:
            return body, True
        body += rest[:size]
        rest = rest[size + 2 :]
    return body, False


def data_reads(url: str, officer: str) -> list[dict]:
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {officer}"}) as http:
        found = http.get("/v1/audit/events", params={"action": "data.read", "limit": 100})
    assert found.status_code == 200, found.text
    return found.json()["events"]


def admin_post(url: str, tokens: dict[str, str], path: str) -> None:
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {tokens['admin']}"}) as http:
        response = http.post(path, json={"reason": "test"})
    assert response.status_code == 200, response.text


def grant_of(url: str, token: str) -> int:
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as http:
        response = http.get("/v1/grants", params={"status": "active"})
    assert response.status_code == 200, response.text
    (grant,) = response.json()["grants"]
    return int(grant["id"])


def cut_mid_stream(
    read_url: str,
    tokens: dict[str, str],
    change: Callable[[], None],
    *,
    reader_name: str = "erin",
    because: str = "",
) -> None:
    """A slow read of ``reader_name`` is under way when ``change`` (an admin's act, or
    waiting for the clock) takes its access away: less than a second of data follows,
    the answer has no closing chunk, and its ``data.read`` names why it is incomplete."""
    reader = SlowReader(read_url, tokens[reader_name])
    thread = reader.start({"limit": 10000})
    deadline = time.monotonic() + 30
    while len(reader.raw) < 8192 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(reader.raw) >= 8192, "the answer did not start"
    change()
    changed = time.monotonic()
    thread.join(timeout=60)
    # Less than a second of data reaches the client after the change.
    assert reader.bytes_after(changed) < READ_BYTES / READ_EVERY_S
    body, terminated = body_of(reader.raw)
    assert not terminated and reader.ended_by in ("reset", "eof")
    assert len(body) < 1_000_000  # the whole answer is about 2 MB
    event = data_reads(read_url, tokens["victor"])[0]
    assert event["complete"] is False and event["dataset"] == "studies"
    assert event["actor"] == reader_name
    assert any(because in reason for reason in event["reasons"]), event["reasons"]
    # What left the server: at least what the client read, at most its buffers more.
    assert len(body) <= event["bytes"] <= len(body) + 16 * RECEIVE_BUFFER
    # Rows are counted by the slices that reached the client whole: a lower bound.
    assert 0 <= event["rows"] < 10000 and event["rows"] * 100 <= event["bytes"]


@pytest.fixture
def pg_workspace(
    demo_template: Workspace, tmp_path: Path, pg_schema_url: str
) -> Iterator[Workspace]:
    workspace = copy_workspace(demo_template, tmp_path / "ws")
    text = workspace.config_path.read_text(encoding="utf-8")
    workspace.config_path.write_text(
        text.replace("state_url: sqlite:///state.db", f"state_url: '{pg_schema_url}'"),
        encoding="utf-8",
    )
    tokens = seed_state(load_config(workspace.config_path))
    yield Workspace(workspace.root, workspace.config_path, tokens)


def test_offboarding_cuts_a_slow_reader_at_the_socket(workspace: Workspace):
    with serving(workspace.config_path) as url:
        offboard = partial(admin_post, url, workspace.tokens, "/v1/principals/erin/offboard")
        cut_mid_stream(url, workspace.tokens, offboard, because="revoked")


def test_suspension_cuts_a_slow_reader_at_the_socket(workspace: Workspace):
    with serving(workspace.config_path) as url:
        suspend = partial(admin_post, url, workspace.tokens, "/v1/principals/erin/suspend")
        cut_mid_stream(url, workspace.tokens, suspend, because="suspended")


def test_revoking_the_grant_cuts_a_slow_reader_at_the_socket(workspace: Workspace):
    with serving(workspace.config_path) as url:
        grant = grant_of(url, workspace.tokens["erin"])
        revoke = partial(admin_post, url, workspace.tokens, f"/v1/grants/{grant}/revoke")
        cut_mid_stream(url, workspace.tokens, revoke, because="no longer")


def test_a_key_expiring_mid_stream_cuts_a_slow_reader(workspace: Workspace):
    with serving(workspace.config_path) as url:
        expires = datetime.now(UTC) + timedelta(seconds=6)
        engine = create_state_engine(workspace.config.state_url)
        try:
            _, token = issue_key(engine, "erin", expires_at=expires)
        finally:
            engine.dispose()

        def until_the_key_expires() -> None:
            time.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()))

        tokens = {**workspace.tokens, "erin": token}
        cut_mid_stream(url, tokens, until_the_key_expires, because="expired")


def window_closing_soon(at: datetime) -> tuple[dict, datetime]:
    """A UTC window open now that closes at a whole minute, far enough ahead for a
    server to start and a read to get under way; and the moment it closes."""
    closes = (at + timedelta(seconds=40)).replace(second=0, microsecond=0) + timedelta(minutes=1)
    end = "24:00" if closes.date() != at.date() else closes.strftime("%H:%M")
    day = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[at.weekday()]
    return {"days": [day], "start": "00:00", "end": end, "timezone": "UTC"}, closes


def test_a_time_window_closing_mid_stream_cuts_a_slow_reader(workspace: Workspace):
    window, closes = window_closing_soon(datetime.now(UTC))
    engine = create_state_engine(workspace.config.state_url)
    try:
        workspace.tokens["wendy"] = seed_principal(engine, "wendy")
        grant(engine, workspace.config, "wendy", dataset="studies", window=window)
    finally:
        engine.dispose()

    def until_the_window_closes() -> None:
        time.sleep(max(0.0, (closes - datetime.now(UTC)).total_seconds()))

    with serving(workspace.config_path) as url:
        cut_mid_stream(
            url,
            workspace.tokens,
            until_the_window_closes,
            reader_name="wendy",
            because="may be used only",
        )


@pytest.mark.pg
def test_offboarding_in_one_process_cuts_a_read_served_by_another(pg_workspace: Workspace):
    with serving(pg_workspace.config_path) as one, serving(pg_workspace.config_path) as other:
        offboard = partial(admin_post, other, pg_workspace.tokens, "/v1/principals/erin/offboard")
        cut_mid_stream(one, pg_workspace.tokens, offboard)
