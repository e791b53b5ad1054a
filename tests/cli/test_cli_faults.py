"""Provider and storage faults under `rlm ask`: each ends with a typed stop, a JSON object
on stdout, a failure exit status and a run recorded with the reason; a run stopped by a
full disk resumes once space returns."""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_support import cli, cli_env

ERROR = 1
REPLY = json.dumps(
    {
        "id": "c1",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "ok"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
).encode()


def _read_request(conn: socket.socket) -> bool:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return False
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    while len(rest) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return False
        rest += chunk
    return True


class FaultyProvider:
    """An OpenAI-compatible endpoint on loopback that answers every request with half a
    body and then either a TCP reset (``reset``) or silence (``stall``)."""

    def __init__(self, fault: str) -> None:
        self.fault = fault
        self.requests = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._stop = threading.Event()
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}/v1"

    def _serve(self) -> None:
        self._listener.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        while _read_request(conn):
            self.requests += 1
            head = (
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(REPLY)}\r\n\r\n"
            ).encode()
            conn.sendall(head + REPLY[: len(REPLY) // 2])
            if self.fault == "reset":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
                return
            self._held.append(conn)
            self._stop.wait()
            return

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        for conn in self._held:
            conn.close()
        self._thread.join(timeout=5)


@pytest.fixture
def provider() -> Iterator[Callable[[str], FaultyProvider]]:
    started: list[FaultyProvider] = []

    def start(fault: str) -> FaultyProvider:
        server = FaultyProvider(fault)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


def _shown(env: dict[str, str], run_id: str) -> dict[str, Any]:
    shown = cli(["runs", "show", run_id, "--json"], env)
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)


def _ask(env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    return cli(
        ["ask", "What is 2+2?", "--model", "openai/m", "--json", "--isolation", "none", *extra],
        env,
    )


@pytest.mark.parametrize(
    ("fault", "kind"), [("reset", "connection"), ("stall", "timeout")], ids=["reset", "stall"]
)
def test_a_provider_fault_mid_reply_ends_the_run_typed_and_recorded(
    tmp_path: Path,
    provider: Callable[[str], FaultyProvider],
    fault: str,
    kind: str,
    transport: str,
) -> None:
    server = provider(fault)
    env = cli_env(tmp_path, server.url)
    env["RLM_OPENAI_TRANSPORT"] = transport
    done = _ask(env, "--request-timeout", "0.5")
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == ERROR, done.stderr
    data = json.loads(done.stdout)
    assert data["stop_reason"] == "error", data
    assert data["cause"]["kind"] == kind, data
    # Retried like any transient fault before giving up.
    assert server.requests > 1
    run = _shown(env, data["run_id"])
    assert run["status"] == "failed", run
    assert run["failure_kind"] == kind, run


@pytest.fixture(params=["direct", "sdk"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def small_home(tmp_path: Path) -> Iterator[Path]:
    """RLM_HOME on a 2 MiB tmpfs, so a test can fill its disk."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    home = tmp_path / "home"
    home.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(home)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.fail(f"could not mount a tmpfs at {home}: {mounted.stderr.strip()}")
    try:
        yield home
    finally:
        subprocess.run(["umount", "-l", str(home)], check=False)


def _fill(directory: Path) -> Path:
    """Write a file until the disk is full; the file, to free the space again."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler


def test_a_full_disk_stops_the_run_as_a_store_failure_and_resume_completes_it(
    small_home: Path,
) -> None:
    from cli_support import is_root, turn

    from rlm_engine.sim.config import SimConfig
    from rlm_engine.sim.policies import CallablePolicy
    from rlm_engine.sim.runner import SimServerThread

    filled: list[Path] = []

    def reply(messages: list[dict[str, Any]]) -> str:
        if not is_root(messages):
            return "x"
        if turn(messages) == 0:  # the run is recorded before this cell runs
            return "```repl\nprint('ready')\n```"
        if turn(messages) == 1:
            if not filled:
                filled.append(_fill(small_home))
            return "```repl\nprint('x' * 50_000)\n```"
        return "FINAL('4')"

    with SimServerThread(SimConfig(), CallablePolicy(reply)) as server:
        env = cli_env(small_home.parent, server.url)
        done = _ask(env)
        assert "Traceback" not in done.stderr, done.stderr
        assert done.returncode == ERROR, (done.stdout, done.stderr)
        data = json.loads(done.stdout)
        assert data["stop_reason"] == "error", data
        assert data["cause"]["type"] == "StoreWriteError", data
        assert data["cause"]["kind"] == "store", data
        assert "resume" in data["cause"]["hint"]
        run_id = data["run_id"]
        run = _shown(env, run_id)
        assert run["status"] == "failed", run
        assert run["failure_kind"] == "store", run
        assert "disk is full" in run["detail"], run
        assert filled, "the model was never asked"
        filled[0].unlink()  # space returns
        resumed = cli(["runs", "resume", run_id, "--json"], env)
        assert resumed.returncode == 0, (resumed.stdout, resumed.stderr)
        assert json.loads(resumed.stdout)["answer"] == "4"
        done_run = _shown(env, run_id)
        assert done_run["status"] == "completed", done_run
        assert done_run["answer"] == "4"


def test_events_the_store_refuses_fail_the_drain_with_a_count_never_silently(
    tmp_path: Path,
) -> None:
    import asyncio
    import sqlite3

    from rlm_engine.events import IterationStarted
    from rlm_engine.service.event_sink import StoreEventSink
    from rlm_engine.store.factory import open_store
    from rlm_engine.store.records import JournalWrites, NewRun
    from rlm_engine.store.write_errors import StoreWriteError

    store = open_store(None, tmp_path / "home")
    try:
        store.create_run(NewRun(run_id="r1", question="q"))
        writer = store.journal_writer
        real = writer._commit  # pyright: ignore[reportPrivateUsage]

        def full_disk(writes: JournalWrites) -> None:
            if writes.events:
                raise sqlite3.OperationalError("database or disk is full")
            real(writes)

        writer._commit = full_disk  # pyright: ignore[reportPrivateUsage]
        sink = StoreEventSink(store)
        sink.run_ids.add("r1")

        async def go() -> None:
            for i in range(3):
                sink(IterationStarted(run_id="r1", iteration=i))
            await sink.drain()

        with pytest.raises(StoreWriteError, match="3 event") as caught:
            asyncio.run(go())
        assert "disk is full" in str(caught.value)
        assert sink.lost == 3
    finally:
        store.close()
