"""Starting one ``rlm-executor`` process for an artifact and waiting for it to end.

The executor runs in its own process group with a minimal environment: it needs the
lakehouse and the interpreter, never the orchestrator's credentials (model calls go back
through the relay). Its stdout and stderr go to ``executor.log`` in the artifact's
directory, the job log the markers are parsed from when ``result.json`` is missing. If it
outlives the cell's time limit plus a grace for its start-up, the whole group is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EXECUTOR_LOG = "executor.log"
_PASSED_ENV = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TMPDIR",
    "PYTHONPATH",
    "VIRTUAL_ENV",
    "RLM_HOME",
    "SYSTEMROOT",
)
"""What an executor inherits: enough to find the interpreter, the package and the home."""


def executor_env(environ: Mapping[str, str]) -> dict[str, str]:
    return {name: environ[name] for name in _PASSED_ENV if environ.get(name)}


@dataclass(frozen=True, slots=True)
class Exit:
    """How an executor process ended."""

    returncode: int | None
    killed: bool
    """The orchestrator killed its process group after the deadline."""


async def spawn_and_wait(
    argv: Sequence[str],
    *,
    token: str,
    log_path: Path,
    env: Mapping[str, str],
    deadline_s: float,
) -> Exit:
    """Run the executor to its end (or kill its group at ``deadline_s``). A cancelled
    wait kills the group too: the cell has no one left to report to."""
    with log_path.open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            env=dict(env),
            start_new_session=True,
        )
    assert process.stdin is not None
    with contextlib.suppress(ConnectionError):
        process.stdin.write(token.encode("ascii") + b"\n")
        await process.stdin.drain()
    process.stdin.close()
    try:
        returncode = await asyncio.wait_for(process.wait(), deadline_s)
    except TimeoutError:
        kill_group(process.pid)
        return Exit(await process.wait(), killed=True)
    except asyncio.CancelledError:
        kill_group(process.pid)
        with contextlib.suppress(BaseException):
            await asyncio.shield(process.wait())
        raise
    return Exit(returncode, killed=False)


def kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def running_elsewhere(meta: Mapping[str, Any], artifact_id: str) -> int | None:
    """The pid of a live executor of ``artifact_id`` recorded in the row's metadata (one
    on this host whose command line names the artifact), else None."""
    pid = meta.get("pid")
    if not isinstance(pid, int) or pid <= 0 or meta.get("host") != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return pid  # no /proc: the live pid is all there is to go by
    return pid if artifact_id.encode() in cmdline else None


async def wait_elsewhere(pid: int, artifact_id: str, deadline_s: float, poll_s: float) -> bool:
    """Wait for another process's executor to end; False if it had to be killed."""
    loop = asyncio.get_running_loop()
    until = loop.time() + deadline_s
    meta = {"pid": pid, "host": socket.gethostname()}
    while running_elsewhere(meta, artifact_id) is not None:
        if loop.time() >= until:
            kill_group(pid)
            return False
        await asyncio.sleep(poll_s)
    return True
