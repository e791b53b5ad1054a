"""Helpers of the artifact sandbox tests: sandboxes of one run, registry rows, executors."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rlm_engine.jobs.artifact_context import context_identity, encode_context
from rlm_engine.jobs.artifact_sandbox import ArtifactSandbox, ArtifactSandboxFactory, artifact_id
from rlm_engine.jobs.artifacts import Artifact, ArtifactRegistry

DEADLINE_S = 60.0


async def refuse(method: str, params: Mapping[str, Any]) -> Any:
    raise AssertionError(f"unexpected host call {method}")


def factory_for(
    registry: ArtifactRegistry, run_id: str = "run-1", **options: Any
) -> ArtifactSandboxFactory:
    return ArtifactSandboxFactory(registry, run_id=run_id, session_id="s1", **options)


async def started(factory: ArtifactSandboxFactory, handler: Any = refuse) -> ArtifactSandbox:
    sandbox = factory(handler, ())
    await sandbox.start()
    await sandbox.load_context("the context")
    return sandbox


def rows(registry: ArtifactRegistry) -> list[Artifact]:
    found = [Artifact.from_row(r) for r in registry.lake.read("artifact_registry")]
    return sorted(found, key=lambda a: a.iteration)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"


async def executing_pid(registry: ArtifactRegistry, *, other_than: int = 0) -> int:
    """The pid of the first artifact to reach ``executing`` (polled, with a deadline)."""
    loop = asyncio.get_running_loop()
    until = loop.time() + DEADLINE_S
    while loop.time() < until:
        for row in await asyncio.to_thread(rows, registry):
            pid = row.metadata.get("pid")
            if row.status == "executing" and isinstance(pid, int) and pid != other_than:
                return pid
        await asyncio.sleep(0.05)
    raise AssertionError("no artifact reached executing")


async def pre_created(
    registry: ArtifactRegistry, code: str
) -> tuple[Artifact, ArtifactSandboxFactory]:
    """A row as a sandbox of a new factory of run-1 would create for its first cell."""
    factory = factory_for(registry)
    spec = encode_context("the context", registry.files_root / "s1" / "contexts")
    anchor = f"start:{context_identity(spec)}:0"
    made = registry.create(
        artifact_id("run-1", anchor, code),
        session_id="s1",
        invocation_id="run-1",
        iteration=1,
        code=code,
        metadata={"context": spec, "isolation": "strict", "timeout_s": 30},
    )
    return made, factory


def executor_command(registry: ArtifactRegistry, aid: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "rlm_engine.jobs.executor",
        "--artifact-id",
        aid,
        "--lakehouse",
        registry.lake.root,
    ]
