"""``rlm-executor`` as its own process, the relay it calls the orchestrator through, and
the notebook each artifact leaves."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from rlm_engine.errors import SandboxError
from rlm_engine.integrations.delta_lake import Lakehouse
from rlm_engine.jobs import markers
from rlm_engine.jobs.artifact_context import encode_context
from rlm_engine.jobs.artifact_result import RESULT_CAP_CHARS, ArtifactResult
from rlm_engine.jobs.artifact_sandbox import ArtifactSandboxFactory
from rlm_engine.jobs.artifacts import ArtifactRegistry
from rlm_engine.jobs.relay import MAX_PATH_BYTES, RelayClient, RelayServer, remote_error

RESULT_KEYS = {
    "artifact_id",
    "status",
    "cell_status",
    "stdout",
    "stderr",
    "stdout_truncated",
    "stderr_truncated",
    "duration_s",
    "error",
    "final",
    "snapshot",
    "clock_reads",
}


@pytest.fixture
def registry(tmp_path: Path) -> ArtifactRegistry:
    return ArtifactRegistry(Lakehouse(tmp_path / "lake"))


def create(registry: ArtifactRegistry, aid: str, code: str) -> None:
    spec = encode_context("hello context", registry.files_root / "s1" / "contexts")
    registry.create(
        aid,
        session_id="s1",
        invocation_id="run-1",
        iteration=1,
        code=code,
        metadata={"context": spec, "isolation": "strict", "timeout_s": 30},
    )


def executor(registry: ArtifactRegistry, aid: str, *extra: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "rlm_engine.jobs.executor", "--artifact-id", aid]
    argv += ["--lakehouse", registry.lake.root, *extra]
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )


def test_the_executor_runs_an_artifact_and_reports_it(registry: ArtifactRegistry) -> None:
    create(registry, "a1", "print(len(context), context.upper())\nanswer = 42")
    done = executor(registry, "a1")
    assert done.returncode == 0, done.stderr
    assert markers.parse(done.stdout, "a1") == ("13 HELLO CONTEXT\n", "success")
    row = registry.get("a1")
    assert row is not None and row.status == "completed"
    assert row.metadata["pid"] > 0 and row.metadata["host"]
    assert row.metadata["cell_status"] == "ok" and row.metadata["stdout_truncated"] is False
    folder = registry.dir_for("a1")
    result = json.loads((folder / "result.json").read_text())
    assert set(result) >= RESULT_KEYS
    assert result["status"] == "success" and result["snapshot"] == "namespace.out"
    assert result["vars"] == {"answer": "int"}
    assert registry.path(row.stdout_artifact_key or "").read_text() == "13 HELLO CONTEXT\n"
    assert registry.path(row.stderr_artifact_key or "").read_text() == ""
    # Run again: the finished artifact is reported from its record, not run.
    again = executor(registry, "a1")
    assert again.returncode == 0 and again.stdout == done.stdout
    rerun = registry.get("a1")
    assert rerun is not None and rerun.metadata["started"] == row.metadata["started"]


def test_a_failing_cell_fails_the_job_with_its_traceback(registry: ArtifactRegistry) -> None:
    create(registry, "a2", "print('partial')\nraise KeyError('missing thing')")
    done = executor(registry, "a2")
    assert done.returncode == 1
    parsed = markers.parse(done.stdout, "a2")
    assert parsed is not None and parsed[1] == "failed"
    assert parsed[0].startswith("partial\n") and "KeyError: 'missing thing'" in parsed[0]
    result = json.loads((registry.dir_for("a2") / "result.json").read_text())
    assert result["cell_status"] == "error" and "Traceback" in result["error"]
    row = registry.get("a2")
    assert row is not None and row.status == "failed"


def test_output_over_the_cap_is_truncated_with_a_flag(registry: ArtifactRegistry) -> None:
    size = RESULT_CAP_CHARS + 5000
    create(registry, "a3", f"print('x' * {size})")
    assert executor(registry, "a3").returncode == 0
    folder = registry.dir_for("a3")
    result = json.loads((folder / "result.json").read_text())
    assert result["stdout_truncated"] is True and len(result["stdout"]) == RESULT_CAP_CHARS
    assert len((folder / "stdout.txt").read_text()) == size + 1


def test_an_unknown_artifact_is_a_clear_error(registry: ArtifactRegistry) -> None:
    registry.lake.ensure("artifact_registry")
    done = executor(registry, "nope")
    assert done.returncode == 2
    assert "artifact 'nope' is not in the registry" in done.stderr
    assert "hint:" in done.stderr and "--lakehouse" in done.stderr


def test_a_cell_without_a_relay_gets_a_clear_host_call_error(registry: ArtifactRegistry) -> None:
    create(registry, "a4", "llm_query('hi')")
    done = executor(registry, "a4")
    assert done.returncode == 1
    assert "this executor was started without --relay" in done.stdout


def test_an_artifact_that_cannot_start_goes_back_to_pending(
    registry: ArtifactRegistry, tmp_path: Path
) -> None:
    gone = {"kind": "path", "path": str(tmp_path / "deleted.txt")}
    registry.create(
        "a5",
        session_id="s1",
        invocation_id="run-1",
        iteration=1,
        code="print(1)",
        metadata={"context": gone, "isolation": "strict"},
    )
    done = executor(registry, "a5")
    assert done.returncode == 2
    assert "deleted.txt" in done.stdout and "could not run the artifact" in done.stdout
    row = registry.get("a5")
    assert row is not None and row.status == "pending"
    assert "deleted.txt" in row.metadata["executor_error"]
    result = ArtifactResult.read(registry.dir_for("a5") / "result.json")
    assert result is not None
    with pytest.raises(SandboxError, match="deleted.txt"):
        result.cell_result()


# -- the relay ---------------------------------------------------------------------------


async def test_the_relay_serves_concurrent_calls_and_refuses_a_wrong_token() -> None:
    release = asyncio.Event()
    in_flight = 0
    peak = 0

    async def handler(method: str, params: Mapping[str, Any]) -> Any:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        if in_flight == 3:
            release.set()
        await asyncio.wait_for(release.wait(), 30)
        in_flight -= 1
        if method == "memory_get":
            raise KeyError(params["key"])
        if method == "boom":
            raise ValueError("handler says no")
        return {"echo": params["n"]}

    server = RelayServer()
    await server.start()
    try:
        folder = server.path.parent
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert len(os.fsencode(str(server.path))) <= MAX_PATH_BYTES
        token = server.open(handler)
        client = RelayClient(server.path, token)
        answers = await asyncio.gather(*(client("echo", {"n": n}) for n in range(3)))
        assert answers == [{"echo": 0}, {"echo": 1}, {"echo": 2}]
        assert peak == 3  # all three were in the handler at once
        with pytest.raises(KeyError):
            await client("memory_get", {"key": "k"})
        with pytest.raises(Exception, match="handler says no") as caught:
            await client("boom", {})
        assert type(caught.value).__name__ == "ValueError"
        with pytest.raises(Exception, match="refused") as refused:
            await RelayClient(server.path, token + "x")("echo", {"n": 9})
        assert type(refused.value).__name__ == "RelayError"
        server.revoke(token)
        with pytest.raises(Exception, match="refused"):
            await client("echo", {"n": 1})
    finally:
        await server.close()
    assert not folder.exists()


async def test_relay_directories_of_killed_processes_are_removed() -> None:
    base = Path(tempfile.mkdtemp(prefix="rlm-t-", dir="/tmp"))
    try:
        gone = subprocess.Popen([sys.executable, "-c", "pass"])
        gone.wait()
        stale = base / f"rlm-relay-{gone.pid}-abc"
        stale.mkdir()
        live = base / f"rlm-relay-{os.getpid()}-def"
        live.mkdir()
        server = RelayServer(parent=base)
        await server.start()
        assert server.path.parent.parent == base
        assert not stale.exists() and live.exists()
        await server.close()
    finally:
        shutil.rmtree(base)


def test_remote_errors_keep_their_type_name() -> None:
    error = remote_error("BudgetExceeded", "no more calls")
    assert type(error).__name__ == "BudgetExceeded" and str(error) == "no more calls"
    assert type(remote_error("not a name!", "x")).__name__ == "RemoteError"


# -- the notebook -------------------------------------------------------------------------


async def test_the_artifacts_notebook_replays_it(registry: ArtifactRegistry) -> None:
    async def handler(method: str, params: Mapping[str, Any]) -> Any:
        return "sub-answer"

    factory = ArtifactSandboxFactory(registry, run_id="run-1", session_id="s1")
    sandbox = factory(handler, ())
    await sandbox.start()
    await sandbox.load_context("abc")
    await sandbox.execute("x = 20\ndef twice(n):\n    return 2 * n", timeout_s=30)
    ran = await sandbox.execute("print(twice(x) + 2, llm_query('q'), context)", timeout_s=30)
    await sandbox.close()
    assert ran.output == "42 sub-answer abc\n"
    folder = registry.dir_for(sandbox.last_artifact_id or "")
    formats: Any = nbformat  # untyped
    notebook: Any = formats.read(str(folder / "cell.ipynb"), as_version=4)
    formats.validate(notebook)
    assert notebook.cells[0].cell_type == "markdown"
    assert sandbox.last_artifact_id in notebook.cells[0].source
    recorded = notebook.cells[2]
    assert recorded.outputs[0]["text"] == "42 sub-answer abc\n"
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = []
    await asyncio.to_thread(NotebookClient(notebook, timeout=60, kernel_name="python3").execute)
    assert notebook.cells[2].outputs[0]["text"] == "42 sub-answer abc\n"
