"""Uploads past the tenant's max context bytes get 413 without the server buffering them:
its peak memory (VmHWM) grows by far less than the upload, with and without
Content-Length; an accepted 20 MB upload is not held in memory either."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from server_support import Launch, LiveServer, StartSimThread, server_env

MIB = 1024 * 1024
LIMIT = 200 * MIB
UPLOAD = 300 * MIB
BOUNDARY = "rlm-upload-test-boundary-4f1c"


@dataclass
class Sent:
    """How many bytes of the body the client produced."""

    bytes: int = 0


def multipart_parts(filename: str) -> tuple[bytes, bytes]:
    """The multipart framing around one file field (after a "name" field)."""
    head = (
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="name"\r\n\r\n'
        "big upload\r\n"
        f"--{BOUNDARY}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: text/plain\r\n\r\n"
    ).encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    return head, tail


def body(size: int, sent: Sent) -> Iterator[bytes]:
    """A multipart body with a ``size``-byte file, made as it is sent (never in memory)."""
    head, tail = multipart_parts("big.txt")
    chunk = (b"0123456789abcdef" * 4096)[: MIB - 1] + b"\n"
    sent.bytes += len(head)
    yield head
    left = size
    while left > 0:
        piece = chunk[: min(left, MIB)]
        left -= len(piece)
        sent.bytes += len(piece)
        yield piece
    sent.bytes += len(tail)
    yield tail


def framed_length(size: int) -> int:
    head, tail = multipart_parts("big.txt")
    return len(head) + size + len(tail)


def upload(server: LiveServer, size: int, *, content_length: bool) -> tuple[httpx.Response, Sent]:
    sent = Sent()
    headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    if content_length:
        headers["Content-Length"] = str(framed_length(size))
    with server.client(timeout=300) as client:
        reply = client.post("/v1/sessions", content=body(size, sent), headers=headers)
    return reply, sent


@pytest.fixture
def server(launch: Launch, sim_thread: StartSimThread, tmp_path: Path) -> LiveServer:
    sim = sim_thread()
    env = server_env(tmp_path / "home", sim.url, RLM_MAX_CONTEXT_BYTES=str(LIMIT))
    live = launch(env)
    with live.client() as client:  # the first request warms the app up (imports, pools)
        warm = client.post("/v1/sessions", json={"name": "warm", "context": "warm"})
        assert warm.status_code in (200, 201), warm.text
    return live


def test_an_upload_with_content_length_over_the_limit_is_refused_unread(
    server: LiveServer,
) -> None:
    before = server.rss()
    server.reset_peak_rss()
    reply, sent = upload(server, UPLOAD, content_length=True)
    growth = server.peak_rss() - before
    assert reply.status_code == 413, reply.text
    assert reply.json()["error"]["type"]
    # Refused from the header alone: the client could push no more than what socket
    # buffers hold before the server answered and closed.
    assert sent.bytes < 64 * MIB, sent.bytes
    assert growth < 100 * MIB, f"the server's peak RSS grew by {growth / MIB:.0f} MiB"
    assert_no_session_kept(server)


def test_a_chunked_upload_over_the_limit_is_cut_at_the_limit(server: LiveServer) -> None:
    before = server.rss()
    server.reset_peak_rss()
    reply, sent = upload(server, UPLOAD, content_length=False)
    growth = server.peak_rss() - before
    assert reply.status_code == 413, reply.text
    # Read up to the limit, not to the end: past it the server stops reading.
    assert LIMIT <= sent.bytes < LIMIT + 64 * MIB, sent.bytes / MIB
    assert growth < 100 * MIB, f"the server's peak RSS grew by {growth / MIB:.0f} MiB"
    assert_no_session_kept(server)


def test_an_accepted_20mb_upload_is_streamed_to_the_store(server: LiveServer) -> None:
    size = 20 * MIB
    before = server.rss()
    server.reset_peak_rss()
    reply, sent = upload(server, size, content_length=True)
    growth = server.peak_rss() - before
    assert reply.status_code in (200, 201), reply.text
    assert sent.bytes == framed_length(size)
    assert reply.json()["context_bytes"] == size
    # Streamed: far less than the upload held at once (a copy or two would be 20-40 MiB).
    assert growth < 16 * MIB, f"the server's peak RSS grew by {growth / MIB:.0f} MiB"


def assert_no_session_kept(server: LiveServer) -> None:
    with server.client() as client:
        names = {s["name"] for s in client.get("/v1/sessions").json()["sessions"]}
    assert names == {"warm"}, names
