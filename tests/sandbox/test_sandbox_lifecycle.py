"""Deadlines, kills, crashes, isolation of the environment, and clean shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sandbox_fakes import FakeHost, descendants, process_gone

from rlm_engine.errors import SandboxDied, SandboxError
from rlm_engine.sandbox import wire
from rlm_engine.sandbox.local import LocalSandbox


async def test_timeout_interrupts_and_keeps_variables(sandbox: LocalSandbox) -> None:
    await sandbox.execute("kept = [1, 2, 3]", timeout_s=10)
    began = time.perf_counter()
    result = await sandbox.execute("partial = 'set'\nwhile True:\n    pass", timeout_s=1)
    elapsed = time.perf_counter() - began
    assert result.status == "timeout"
    assert 0.9 < elapsed < 1.0 + 0.5 + 1.0
    assert result.error is not None
    assert result.error.startswith("TimeoutError:") and "KeyboardInterrupt" in result.error
    assert sandbox.alive
    after = await sandbox.execute("print(kept, partial)", timeout_s=10)
    assert after.output == "[1, 2, 3] set\n"


async def test_a_replaced_sigint_handler_does_not_break_interrupts(sandbox: LocalSandbox) -> None:
    code = "import signal\nsignal.signal(signal.SIGINT, signal.default_int_handler)\nkept = 1"
    assert (await sandbox.execute(code, timeout_s=10)).status == "ok"
    assert sandbox.pid is not None
    os.kill(sandbox.pid, signal.SIGINT)  # between cells: must not reach the worker's loop
    await asyncio.sleep(0.1)
    result = await sandbox.execute("while True:\n    pass", timeout_s=0.5)
    assert result.status == "timeout"
    assert (await sandbox.execute("print(kept)", timeout_s=10)).output == "1\n"


async def test_timeout_while_waiting_on_the_host(sandbox: LocalSandbox, host: FakeHost) -> None:
    host.delay_s = 30
    began = time.perf_counter()
    result = await sandbox.execute("llm_query('slow')", timeout_s=0.5)
    assert result.status == "timeout"
    assert time.perf_counter() - began < 2.0
    host.delay_s = 0
    assert (await sandbox.execute("print(llm_query('fast'))", timeout_s=10)).output == (
        "answer to fast\n"
    )


async def test_a_cell_that_ignores_the_interrupt_is_killed(sandbox: LocalSandbox) -> None:
    pid = sandbox.pid
    assert pid is not None
    code = (
        "import time\n"
        "while True:\n"
        "    try:\n"
        "        time.sleep(10)\n"
        "    except KeyboardInterrupt:\n"
        "        pass"
    )
    began = time.perf_counter()
    result = await sandbox.execute(code, timeout_s=1)
    elapsed = time.perf_counter() - began
    assert result.status == "killed"
    assert elapsed < 1.0 + 0.5 + 1.0
    assert "killed" in (result.error or "") and "variables are lost" in (result.error or "")
    assert not sandbox.alive
    assert process_gone(pid)
    with pytest.raises(SandboxDied):
        await sandbox.execute("1", timeout_s=1)
    with pytest.raises(SandboxDied):
        await sandbox.list_vars()


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("import os\nos._exit(3)", "code 3"),
        ("import ctypes\nctypes.string_at(0)", "SIGSEGV"),
    ],
)
async def test_a_worker_that_dies_mid_cell(sandbox: LocalSandbox, code: str, reason: str) -> None:
    pid = sandbox.pid
    assert pid is not None
    result = await sandbox.execute(code, timeout_s=10)
    assert result.status == "killed"
    assert reason in (result.error or "")
    assert not sandbox.alive
    assert process_gone(pid)
    with pytest.raises(SandboxDied):
        await sandbox.execute("1", timeout_s=1)


async def test_processes_started_by_cells_die_with_the_sandbox(sandbox: LocalSandbox) -> None:
    result = await sandbox.execute(
        "import subprocess\nchild = subprocess.Popen(['sleep', '60'])\nchild.pid", timeout_s=10
    )
    assert int(result.output) > 0
    worker_pid = sandbox.pid
    assert worker_pid is not None
    # The pid the cell sees may belong to its own pid namespace: look from the host.
    (child_pid,) = descendants(worker_pid)
    await sandbox.close()
    await sandbox.close()  # idempotent
    assert process_gone(worker_pid)
    assert process_gone(child_pid)
    with pytest.raises(SandboxDied):
        await sandbox.execute("1", timeout_s=1)


async def test_close_removes_the_workdir(host: FakeHost, tmp_path: Path) -> None:
    box = LocalSandbox(host, workdir_parent=tmp_path)
    await box.start()
    workdir = box.workdir
    assert workdir is not None and workdir.is_dir()
    cwd = await box.execute("import os\nos.getcwd()", timeout_s=10)
    assert cwd.output.strip() == repr(str(workdir))
    await box.close()
    assert not workdir.exists()
    unstarted = LocalSandbox(host)
    await unstarted.close()
    with pytest.raises(SandboxDied):
        await unstarted.start()


async def test_credentials_are_not_in_the_worker_environment(
    host: FakeHost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-canary-123")
    monkeypatch.setenv("PYTHONPATH", "/nowhere")
    async with LocalSandbox(host, workdir_parent=tmp_path) as box:
        result = await box.execute(
            "import os\nprint(sorted(os.environ))\nprint('sk-canary' in repr(dict(os.environ)))",
            timeout_s=10,
        )
        assert result.output.splitlines()[1] == "False"
        names = set(eval(result.output.splitlines()[0]))
        assert names <= {"PATH", "LANG", "LC_ALL", "HOME", "TMPDIR", "LC_CTYPE", "PWD"}
        home = await box.execute(
            "import os, tempfile\n(os.environ['HOME'], tempfile.gettempdir())", timeout_s=10
        )
        assert str(box.workdir) in home.output


async def test_cancelling_execute_interrupts_the_cell(sandbox: LocalSandbox) -> None:
    task = asyncio.create_task(sandbox.execute("import time\ntime.sleep(30)", timeout_s=60))
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    result = await sandbox.execute("print('next')", timeout_s=10)
    assert result.output == "next\n"
    assert sandbox.alive


async def test_a_worker_that_cannot_start_reports_why(host: FakeHost, tmp_path: Path) -> None:
    box = LocalSandbox(host, workdir_parent=tmp_path, python="/nonexistent/python")
    with pytest.raises(SandboxError):
        await box.start()
    assert not box.alive
    assert list(tmp_path.iterdir()) == []


async def test_a_worker_that_crashes_at_start_shows_its_output(
    host: FakeHost, tmp_path: Path
) -> None:
    fake = tmp_path / "fake-python"
    fake.write_text("#!/bin/sh\necho 'No module named rlm_engine' >&2\nexit 1\n")
    fake.chmod(0o755)
    (tmp_path / "work").mkdir()
    box = LocalSandbox(host, workdir_parent=tmp_path / "work", python=str(fake))
    with pytest.raises(SandboxError, match="No module named rlm_engine"):
        await box.start()
    assert not box.alive


async def test_sigint_between_cells_is_ignored(sandbox: LocalSandbox) -> None:
    await sandbox.execute("kept = 1", timeout_s=10)
    assert sandbox.pid is not None
    os.kill(sandbox.pid, signal.SIGINT)
    await asyncio.sleep(0.1)
    assert sandbox.alive
    assert (await sandbox.execute("print(kept)", timeout_s=10)).output == "1\n"


def test_tool_names_are_checked() -> None:
    async def handler(method: str, params: object) -> None:
        return None

    for bad in (["llm_query"], ["not valid"], ["class"], ["a", "a"]):
        with pytest.raises(ValueError):
            LocalSandbox(handler, tools=bad)


def test_the_worker_exits_when_the_host_goes_away(tmp_path: Path) -> None:
    to_worker_r, to_worker_w = os.pipe()
    from_worker_r, from_worker_w = os.pipe()
    proc = subprocess.Popen(
        [sys.executable, "-I", "-m", "rlm_engine.sandbox.worker"]
        + ["--fds", f"{to_worker_r},{from_worker_w}"],
        pass_fds=(to_worker_r, from_worker_w),
        cwd=tmp_path,
        start_new_session=True,
    )
    os.close(to_worker_r)
    os.close(from_worker_w)
    try:
        assert wire.read_frame(from_worker_r) == {"type": "ready", "pid": proc.pid}
        os.close(to_worker_w)  # what the kernel does when the host dies
        assert proc.wait(timeout=10) != 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(from_worker_r)


async def test_measure_start_and_round_trip(host: FakeHost, tmp_path: Path) -> None:
    """Reports timings; the bounds are loose on purpose (shared CI machines)."""
    began = time.perf_counter()
    box = LocalSandbox(host, workdir_parent=tmp_path)
    await box.start()
    start_s = time.perf_counter() - began
    try:
        cells = 200
        began = time.perf_counter()
        for _ in range(cells):
            await box.execute("x = 1", timeout_s=10)
        cell_s = (time.perf_counter() - began) / cells
        began = time.perf_counter()
        for _ in range(cells):
            await box.execute("llm_query('q')", timeout_s=10)
        rpc_s = (time.perf_counter() - began) / cells
    finally:
        await box.close()
    print(
        f"\nstart {start_s * 1000:.1f} ms; cell round trip {cell_s * 1000:.2f} ms; "
        f"cell with one llm_query {rpc_s * 1000:.2f} ms"
    )
    assert start_s < 10 and cell_s < 1
