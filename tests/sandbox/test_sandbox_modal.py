"""The Modal backend against a fake ``modal`` module (no Modal account exists here).

What is real: the worker program, the framed protocol over byte streams, host calls,
interrupts delivered by a command run "in the sandbox", kills by terminating it, and
context upload by ``tar``. What is fake: the container, the image and the volume. The
fake records how sandboxes, images, volumes and apps are built and runs every
``Sandbox.exec`` as a local process with byte streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import types
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sandbox_fakes import FakeHost

from rlm_engine.errors import ConfigurationError, MissingExtraError, SandboxDied
from rlm_engine.sandbox.factory import sandbox_factory
from rlm_engine.sandbox.limits import Limits
from rlm_engine.sandbox.modal_backend import (
    ModalSandbox,
    load_modal,
    rebase_spec,
    worker_command,
)

CANARY = "RLM_TEST_MODAL_CANARY"


class _Twin:
    """A blocking callable with an ``.aio`` coroutine twin, as Modal's methods have."""

    def __init__(self, blocking: Callable[..., Any], coroutine: Callable[..., Awaitable[Any]]):
        self._blocking = blocking
        self.aio = coroutine

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._blocking(*args, **kwargs)


def _async_only(coroutine: Callable[..., Awaitable[Any]]) -> _Twin:
    def blocking(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the backend must use the async API inside the event loop")

    return _Twin(blocking, coroutine)


@dataclass
class FakeImage:
    base: str
    python_version: str | None = None
    local_sources: tuple[str, ...] = ()

    def add_local_python_source(self, *modules: str) -> FakeImage:
        return FakeImage(self.base, self.python_version, self.local_sources + modules)


@dataclass(frozen=True)
class FakeVolume:
    name: str


class FakeReader:
    def __init__(self, stream: asyncio.StreamReader) -> None:
        self._stream = stream

        async def read_all() -> bytes:
            return await self._stream.read()

        self.read = _async_only(read_all)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while chunk := await self._stream.read(65536):
            yield chunk


class FakeWriter:
    def __init__(self, stream: asyncio.StreamWriter) -> None:
        self._stream = stream
        self.drain = _async_only(self._drain)

    def write(self, data: bytes) -> None:
        self._stream.write(data)

    def write_eof(self) -> None:
        self._stream.write_eof()

    async def _drain(self) -> None:
        with contextlib.suppress(ConnectionError):
            await self._stream.drain()


class FakeProcess:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdin and proc.stdout and proc.stderr
        self.proc = proc
        self.stdin = FakeWriter(proc.stdin)
        self.stdout = FakeReader(proc.stdout)
        self.stderr = FakeReader(proc.stderr)
        self.wait = _async_only(proc.wait)


@dataclass
class FakeSandbox:
    args: tuple[str, ...]
    options: dict[str, Any]
    execs: list[tuple[str, ...]] = field(default_factory=list[tuple[str, ...]])
    processes: list[FakeProcess] = field(default_factory=list[FakeProcess])
    terminated: int = 0

    def __post_init__(self) -> None:
        self.exec = _async_only(self._exec)
        self.terminate = _Twin(self._terminate, self._terminate_async)
        for mount in self.options.get("volumes", {}):
            Path(mount).mkdir(parents=True, exist_ok=True)  # the volume "mounted" there

    async def _exec(self, *argv: str, text: bool = True) -> FakeProcess:
        assert text is False, "the protocol needs byte streams"
        self.execs.append(argv)
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        process = FakeProcess(proc)
        self.processes.append(process)
        return process

    def _terminate(self) -> None:
        self.terminated += 1
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.proc.pid, signal.SIGKILL)

    async def _terminate_async(self) -> None:
        self._terminate()


@dataclass
class FakeModal:
    """What the fake module recorded."""

    apps: list[tuple[str, bool]] = field(default_factory=list[tuple[str, bool]])
    sandboxes: list[FakeSandbox] = field(default_factory=list[FakeSandbox])
    volumes: list[tuple[str, bool]] = field(default_factory=list[tuple[str, bool]])


def fake_modal_module() -> tuple[types.ModuleType, FakeModal]:
    """A module to install as ``sys.modules["modal"]`` and its record."""
    record = FakeModal()
    module = types.ModuleType("modal")

    async def lookup(name: str, *, create_if_missing: bool = False) -> str:
        record.apps.append((name, create_if_missing))
        return f"app:{name}"

    async def create(*args: str, app: Any = None, image: Any = None, **options: Any) -> Any:
        assert app is not None and image is not None
        sandbox = FakeSandbox(args, {"app": app, "image": image, **options})
        record.sandboxes.append(sandbox)
        return sandbox

    def from_name(name: str, *, create_if_missing: bool = False) -> FakeVolume:
        record.volumes.append((name, create_if_missing))
        return FakeVolume(name)

    module.App = types.SimpleNamespace(lookup=_async_only(lookup))  # type: ignore[attr-defined]
    module.Sandbox = types.SimpleNamespace(create=_async_only(create))  # type: ignore[attr-defined]
    module.Volume = types.SimpleNamespace(from_name=from_name)  # type: ignore[attr-defined]
    module.Image = types.SimpleNamespace(  # type: ignore[attr-defined]
        debian_slim=lambda python_version=None: FakeImage("debian_slim", python_version),
        from_registry=lambda tag: FakeImage(f"registry:{tag}"),
    )
    return module, record


@pytest.fixture
def modal(monkeypatch: pytest.MonkeyPatch) -> FakeModal:
    module, record = fake_modal_module()
    monkeypatch.setitem(sys.modules, "modal", module)
    return record


def _local_box(tmp_path: Path, host: FakeHost, **options: object) -> ModalSandbox:
    factory = sandbox_factory(
        "modal",
        volume="session-ws",
        remote_root=str(tmp_path / "remote"),
        workspace_mount=str(tmp_path / "volume"),
        container_python=sys.executable,
        **options,
    )
    box = factory(host, ("lookup",))
    assert isinstance(box, ModalSandbox)
    return box


async def test_sandbox_is_built_closed_to_the_network_with_the_project_image(
    modal: FakeModal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CANARY, "secret-value")
    box = _local_box(tmp_path, FakeHost(), limits=Limits(memory_mb=1024, cpu_quota=2.0))
    await box.start()
    try:
        assert box.isolation_level == "modal"
        seen = await box.execute(f"import os\nprint(os.environ.get('{CANARY}'))", timeout_s=10)
        assert seen.output == "None\n"
    finally:
        await box.close()
    assert modal.apps == [("rlm-engine-sandbox", True)]
    assert modal.volumes == [("session-ws", True)]
    (sandbox,) = modal.sandboxes
    assert sandbox.args == ("sleep", "infinity")
    options = sandbox.options
    assert options["block_network"] is True and options["secrets"] == []
    assert options["image"] == FakeImage("debian_slim", "3.11", ("rlm_engine",))
    assert options["volumes"] == {str(tmp_path / "volume"): FakeVolume("session-ws")}
    assert options["cpu"] == 2.0 and options["memory"] == 1024
    assert "env" not in options  # nothing of the host's environment is passed in
    command = sandbox.execs[0]
    assert command[:2] == ("env", "-i") and "secret-value" not in " ".join(command)
    assert sandbox.terminated >= 1


async def test_protocol_runs_end_to_end_over_the_sandbox_streams(
    modal: FakeModal, tmp_path: Path
) -> None:
    host = FakeHost()
    box = _local_box(tmp_path, host)
    await box.start()
    try:
        meta = await box.load_context("over modal streams")
        assert meta.type == "str" and meta.total_chars == 18
        first = await box.execute(
            "import os\nx = 1\nos.write(1, b'raw\\n')\n"
            "print(context, llm_query('q'), lookup()['tool'])\n"
            "workspace.write('kept.txt', 'on the volume')",
            timeout_s=10,
        )
        assert first.status == "ok", first
        assert "over modal streams answer to q lookup\n" in first.output
        assert (tmp_path / "volume" / "kept.txt").read_text() == "on the volume"
        final = await box.execute("x += 1\nFINAL(str(x))", timeout_s=10)
        assert final.final is not None and final.final.answer == "2"
        timed_out = await box.execute("import time\ntime.sleep(30)", timeout_s=0.3)
        assert timed_out.status == "timeout", timed_out
        assert (await box.execute("print(x)", timeout_s=10)).output == "2\n"
        assert [method for method, _ in host.calls] == ["llm_query", "tool"]
        stuck = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(30)"
        killed = await box.execute(stuck, timeout_s=0.3)
        assert killed.status == "killed", killed
        with pytest.raises(SandboxDied):
            await box.execute("print(x)", timeout_s=5)
    finally:
        await box.close()
    (sandbox,) = modal.sandboxes
    interrupts = [argv for argv in sandbox.execs if argv[:2] == ("kill", "-INT")]
    assert len(interrupts) == 2  # the timeout, then the stuck cell
    assert sandbox.terminated >= 1


async def test_contexts_are_uploaded_and_staged_copies_removed(
    modal: FakeModal, tmp_path: Path
) -> None:
    box = _local_box(tmp_path, FakeHost())
    corpus = tmp_path / "docs"
    (corpus / "sub").mkdir(parents=True)
    (corpus / "a.txt").write_text("alpha")
    (corpus / "sub" / "b.txt").write_text("beta")
    await box.start()
    try:
        meta = await box.load_context({"rows": [1, 2]})
        assert meta.type == "dict"
        assert not (tmp_path / "remote" / "contexts" / "1").exists()  # loaded, then removed
        meta = await box.load_context(corpus)
        assert meta.files == 2
        assert (tmp_path / "remote" / "contexts" / "2" / "docs" / "sub" / "b.txt").exists()
        listed = await box.execute("print(sorted(context.files()))", timeout_s=10)
        assert "sub/b.txt" in listed.output, listed
    finally:
        await box.close()


def test_worker_command_and_spec_rebasing() -> None:
    command = worker_command(
        python="python",
        root="/rlm",
        tools=["a", "b"],
        output_cap=10,
        limits=Limits(nproc=64),
        workspace="/data",
    )
    assert command[:2] == ["env", "-i"] and "HOME=/rlm/work" in command
    assert command[command.index("--tools") + 1] == "a,b"
    assert command[command.index("--workspace") + 1] == "/data"
    assert command[command.index("--rlimits") + 1].split(",")[2] == "0"  # root: no NPROC
    spec = {"kind": "texts", "paths": ["/tmp/x/3/a.txt"], "path": "/tmp/x/3", "files": 1}
    moved = rebase_spec(spec, "/tmp/x/3", "/rlm/contexts/3")
    assert moved == {
        "kind": "texts",
        "paths": ["/rlm/contexts/3/a.txt"],
        "path": "/rlm/contexts/3",
        "files": 1,
    }


def test_a_missing_modal_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "modal", None)
    with pytest.raises(MissingExtraError, match=r"rlm-engine\[modal\]"):
        load_modal()
    with pytest.raises(MissingExtraError):
        sandbox_factory("modal")


def test_settings_that_do_not_apply_are_refused(modal: FakeModal, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="container is the isolation"):
        sandbox_factory("modal", isolation="strict")
    with pytest.raises(ConfigurationError, match="Volume"):
        sandbox_factory("modal", workspace=tmp_path)(FakeHost(), ())
