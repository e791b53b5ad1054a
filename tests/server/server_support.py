"""The real server as a subprocess on a loopback port, and the clients the acceptance
tests drive it with: httpx over real HTTP, an SSE reader, the process's memory."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from rlm_engine.sim.policies import message_text
from rlm_engine.store.factory import open_store

MODEL = "sim/sim-model"
POSTGRES_URL = os.environ.get(
    "RLM_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
# Variables of the developer's shell that would steer the server elsewhere: provider
# settings, our own, and the seed's aliases of them.
_FOREIGN = ("OPENAI", "RLM_", "ANTHROPIC", "GEMINI", "DATABRICKS", "LITELLM")
_ALIASES = (
    "DATABASE_URL",
    "DEFAULT_MODEL",
    "MAX_RECURSION_DEPTH",
    "EXECUTION_TIMEOUT",
    "MAX_CONTEXT_SIZE",
)
_READY_TIMEOUT_S = 90.0

StartSimThread = Callable[..., Any]
"""The `sim_thread` fixture: ``(config, policy) -> SimServerThread``."""
Launch = Callable[..., "LiveServer"]
"""The `launch` fixture: ``(env, *, port=None) -> LiveServer``."""


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(
    home: Path, sim_url: str, store_url: str | None = None, **extra: str
) -> dict[str, str]:
    """This environment less any provider, rlm or alias setting, with the store under
    ``home`` (or at ``store_url``) and every ``sim/`` model at the simulator ``sim_url``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN) and k not in _ALIASES}
    env.update(RLM_HOME=str(home), RLM_SIM_URL=sim_url, RLM_MODEL=MODEL)
    if store_url is not None:
        env["RLM_STORE_URL"] = store_url
    env.update(extra)
    return env


def rlm(args: list[str], env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """The `rlm` command line in a subprocess, with ``env``."""
    return subprocess.run(
        [sys.executable, "-m", "rlm_engine.cli.main", *args],
        capture_output=True,
        text=True,
        env=dict(env),
        timeout=120,
        check=False,
    )


_SECRET = re.compile(r"\brlm_[A-Za-z0-9_-]{20,}")


def create_key(env: Mapping[str, str], tenant: str) -> str:
    """`rlm keys create --tenant TENANT` on the store of ``env``; the secret it prints once."""
    done = rlm(["keys", "create", "--tenant", tenant, "--name", f"{tenant} tests"], env)
    assert done.returncode == 0, done.stdout + done.stderr
    found = _SECRET.findall(done.stdout)
    assert len(found) == 1, f"expected one secret in: {done.stdout!r}"
    return found[0]


def _proc_status(pid: int, field_name: str) -> int:
    """A ``kB`` figure of /proc/<pid>/status, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field_name}:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field_name} in /proc/{pid}/status")


@dataclass
class LiveServer:
    """One `rlm serve` process; its base URL, output log and memory."""

    proc: subprocess.Popen[bytes]
    url: str
    log: Path
    env: dict[str, str]
    port: int

    @property
    def pid(self) -> int:
        return self.proc.pid

    def client(self, key: str | None = None, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        kwargs.setdefault("timeout", 60)
        return httpx.Client(base_url=self.url, headers=headers, **kwargs)

    def peak_rss(self) -> int:
        """VmHWM: the most resident memory the process has had (since the last reset)."""
        return _proc_status(self.pid, "VmHWM")

    def rss(self) -> int:
        return _proc_status(self.pid, "VmRSS")

    def reset_peak_rss(self) -> None:
        """Bring VmHWM down to the current RSS (Linux: ``5`` into clear_refs)."""
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")

    def output(self) -> str:
        """What the server printed so far (for failure messages)."""
        return self.log.read_text(errors="replace")[-6000:]

    def kill(self) -> None:
        """kill -9, as a crash."""
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        """SIGTERM (uvicorn's graceful shutdown), SIGKILL if it does not end in time."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


def start_server(env: Mapping[str, str], log_dir: Path, *, port: int | None = None) -> LiveServer:
    """`rlm serve` on a loopback port, returned once /readyz answers 200."""
    port = port or free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"server-{port}-{uuid.uuid4().hex[:6]}.log"
    command = [sys.executable, "-m", "rlm_engine.cli.main", "serve"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(command, env=dict(env), stdout=out, stderr=subprocess.STDOUT)
    server = LiveServer(
        proc=proc, url=f"http://127.0.0.1:{port}", log=log, env=dict(env), port=port
    )
    deadline = time.monotonic() + _READY_TIMEOUT_S
    with httpx.Client(base_url=server.url, timeout=5) as client:
        while True:
            if proc.poll() is not None:
                raise AssertionError(
                    f"the server exited with {proc.returncode}:\n{server.output()}"
                )
            with contextlib.suppress(httpx.TransportError):
                if client.get("/readyz").status_code == 200:
                    return server
            if time.monotonic() > deadline:
                server.kill()
                raise AssertionError(f"the server never became ready:\n{server.output()}")
            time.sleep(0.1)


# -- SSE ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One server-sent event as the wire carried it, and when this client got it."""

    id: str | None
    event: str | None
    data: str
    received: float = field(default=0.0, compare=False)

    @property
    def seq(self) -> int:
        assert self.id is not None, f"an event without id: {self}"
        return int(self.id)

    def json(self) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(self.data)
        return body


class _SseParser:
    """Line-by-line SSE parsing (the WHATWG rules this server's events need)."""

    def __init__(self) -> None:
        self.id: str | None = None
        self.event: str | None = None
        self.data: list[str] = []

    def feed(self, line: str) -> SseEvent | None:
        if line == "":
            if not self.data and self.event is None:
                return None
            done = SseEvent(self.id, self.event, "\n".join(self.data), time.time())
            self.event, self.data = None, []
            return done
        if line.startswith(":"):
            return None  # a comment: the heartbeat
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "id":
            self.id = value
        elif name == "event":
            self.event = value
        elif name == "data":
            self.data.append(value)
        return None


def iter_sse(response: httpx.Response) -> Iterator[SseEvent]:
    """The events of a streaming httpx response, as they arrive."""
    assert response.status_code == 200, response.read()
    content_type = response.headers.get("content-type", "")
    assert content_type.startswith("text/event-stream"), content_type
    parser = _SseParser()
    for line in response.iter_lines():
        event = parser.feed(line)
        if event is not None:
            yield event


def assert_contiguous(events: list[SseEvent]) -> None:
    """Every seq once, each one more than the last."""
    seqs = [e.seq for e in events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs


# -- stores -------------------------------------------------------------------------------

# The same naming as tests/store/conftest.py, so either cleans up schemas of killed runs.
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


@contextlib.contextmanager
def postgres_schema() -> Generator[str, None, None]:
    """A store URL whose connections live in a fresh schema (dropped afterwards)."""
    schema = f"rlm_test_{_HOST}_{os.getpid()}_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = sa.make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def wait_for(
    check: Any, what: str, *, timeout_s: float = 90.0, server: LiveServer | None = None
) -> Any:
    """Poll ``check()`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if server is not None and server.proc.poll() is not None:
            raise AssertionError(f"the server died waiting for {what}:\n{server.output()}")
        if time.monotonic() > deadline:
            extra = f"\n{server.output()}" if server is not None else ""
            raise AssertionError(f"timed out waiting for {what}{extra}")
        time.sleep(0.1)


# -- the end-to-end flow of test_live_sqlite / test_live_postgres --------------------------

# 5.3M tokens at four characters each: a little over 20 MB of haystack.
NEEDLE_TOKENS = 5_300_000


def needle_task(registry: Any) -> Any:
    """A single-needle task of ~21 MB whose ground truth the oracle ``registry`` knows."""
    from rlm_engine.bench.gen_sniah import generate
    from rlm_engine.bench.task import register_with_oracle

    task = generate(NEEDLE_TOKENS, 0, 1)
    register_with_oracle(task, registry)
    return task


def upload_session(client: httpx.Client, path: Path, name: str) -> dict[str, Any]:
    """POST /v1/sessions as multipart, the file streamed from disk by httpx."""
    with path.open("rb") as handle:
        reply = client.post(
            "/v1/sessions",
            data={"name": name},
            files={"file": (path.name, handle, "text/plain")},
        )
    assert reply.status_code in (200, 201), reply.text
    body: dict[str, Any] = reply.json()
    return body


def event_types(events: list[SseEvent]) -> list[str]:
    return [e.event or "" for e in events]


def assert_run_events(events: list[SseEvent], run_id: str, answer: str) -> None:
    """run_started first, run_finished last, every body the stored event of this run
    (SSE `event:` its type), the final answer right."""
    types = event_types(events)
    assert types[0] == "run_started", types[:5]
    assert types[-1] == "run_finished", types[-5:]
    assert types.count("run_started") == 1 and types.count("run_finished") == 1
    bodies = [e.json() for e in events]
    assert all(b["type"] == e.event for b, e in zip(bodies, events, strict=True))
    assert {b["run_id"] for b in bodies} == {run_id}
    finals = [b for b in bodies if b["type"] == "final"]
    assert [f["answer"] for f in finals] == [answer]
    assert bodies[-1]["stop_reason"] == "final"
    assert types.index("iteration_started") < types.index("final") < len(types) - 1
    # Each sub-call opened is closed.
    started = sorted(b["call_id"] for b in bodies if b["type"] == "subcall_started")
    finished = sorted(b["call_id"] for b in bodies if b["type"] == "subcall_finished")
    assert started and started == finished


def live_flow(
    launch: Launch, sim_thread: StartSimThread, tmp_path: Path, store_url: str | None
) -> None:
    """The acceptance flow on one store: a session from a 20 MB multipart upload, a run
    streamed over the seed's SSE route and one submitted and followed on /v1, each with
    the right answer and its events in order; then their trees and the stats."""
    from rlm_engine.sim import OraclePolicy, OracleRegistry

    registry = OracleRegistry()
    task = needle_task(registry)
    context = tmp_path / "haystack.txt"
    context.write_text(task.context, encoding="utf-8")
    size = context.stat().st_size
    assert size > 20_000_000
    sim = sim_thread(None, OraclePolicy(registry))
    server = launch(server_env(tmp_path / "home", sim.url, store_url))
    with server.client() as client:
        session = upload_session(client, context, "haystack")
        session_id = session["session_id"] if "session_id" in session else session["id"]
        got = client.get(f"/v1/sessions/{session_id}")
        assert got.status_code == 200, got.text
        assert got.json()["context_bytes"] == size
        assert got.json()["name"] == "haystack"

        # The seed's surface: POST /api/execute/stream answers with the run's events.
        body = {"session_id": session_id, "user_query": task.question}
        with client.stream("POST", "/api/execute/stream", json=body, timeout=300) as reply:
            seed_events = list(iter_sse(reply))
        seed_run = seed_events[0].json()["run_id"]
        assert_run_events(seed_events, seed_run, task.answer)
        tree = client.get(f"/api/executions/{seed_run}/tree")
        assert tree.status_code == 200, tree.text
        assert seed_run in tree.text and task.answer in tree.text

        # /v1: submit (202), then follow its events from the start.
        submitted = client.post(
            "/v1/runs", json={"question": task.question, "session_id": session_id}
        )
        assert submitted.status_code == 202, submitted.text
        run_id = submitted.json()["run_id"]
        with client.stream("GET", f"/v1/runs/{run_id}/events", timeout=300) as reply:
            events = list(iter_sse(reply))
        assert_run_events(events, run_id, task.answer)
        assert_contiguous(events)
        run = client.get(f"/v1/runs/{run_id}").json()
        assert run["status"] == "completed" and run["answer"] == task.answer, run

        subcalls = sum(1 for e in events if e.event == "subcall_finished")
        tree = client.get(f"/v1/runs/{run_id}/tree")
        assert tree.status_code == 200, tree.text
        nodes = tree.json()["nodes"]
        assert sum(1 for n in nodes if n["kind"] == "llm") == subcalls

        runs = client.get("/v1/runs", params={"session_id": session_id}).json()["runs"]
        assert {r["run_id"] for r in runs} == {seed_run, run_id}

        stats = client.get("/v1/stats")
        assert stats.status_code == 200, stats.text
        totals = stats.json()["totals"]
        # Both runs: per run 3 root turns (inspect, solve, ...) and one call per chunk.
        assert totals["calls"] >= 2 * (subcalls + 2), totals
        by_session = stats.json()["by_session"]
        assert session_id in json.dumps(by_session)
        seed_stats = client.get("/api/stats")
        assert seed_stats.status_code == 200, seed_stats.text


# -- a run slowed down enough to be killed in the middle (test_kill_restart, two processes) --

CALLS = 160  # 32 at a time (the engine's default width), each slowed by the simulator
LATENCY_S = 0.25
KILL_AFTER = 40  # journaled sub-calls before the kill
BATCH = (
    "```repl\n"
    f"out = llm_query_batched([f'item {{i}}' for i in range({CALLS})])\n"
    "print(len(out))\n"
    "```"
)
FINISH = "```repl\nFINAL(f\"{sum(a.startswith('answer to item') for a in out)} answers\")\n```"
ANSWER = f"{CALLS} answers"


def is_root(messages: list[dict[str, Any]]) -> bool:
    return bool(messages) and message_text(messages[0]).startswith("You answer a question")


def batch_policy(messages: list[dict[str, Any]]) -> str:
    """Root: one batch cell, then FINAL with the count of right answers. Sub-calls:
    ``answer to <prompt>``, so a journaled reply names the prompt it answered."""
    if is_root(messages):
        turns = sum(1 for m in messages if m.get("role") == "assistant")
        return BATCH if turns == 0 else FINISH
    return f"answer to {message_text(messages[-1])}"


def journaled_sub_calls(env: dict[str, str], run_id: str) -> set[str]:
    """The prompts of the sub-calls journaled (completed) so far, read from the store."""
    store = open_store(env.get("RLM_STORE_URL"), Path(env["RLM_HOME"]))
    try:
        snapshot = store.load_journal(run_id)
    finally:
        store.close()
    return {
        c.response.removeprefix("answer to ")
        for c in snapshot.calls.values()
        if c.kind == "llm" and c.status == "completed" and c.response
    }
