"""One artifact's cell, run in a fresh local sandbox inside the executor process.

The executor is a new process per artifact, so the REPL's variables travel between cells
as namespace snapshots (``sandbox.worker_snapshot``): the REPL loads the context, then
``namespace.in`` (what the previous artifact left), runs the cell, and pickles its
variables into ``namespace.out``. Pickling and unpickling happen inside the sandbox; this
process only moves the bytes. Variables that do not pickle are dropped from the snapshot
and named in the cell's stderr, because the next cell will not see them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from rlm_engine.errors import RLMError
from rlm_engine.jobs.artifact_context import ContextSpec, decode_context
from rlm_engine.jobs.artifact_result import FILE_CAP_CHARS, RESULT_CAP_CHARS, ArtifactResult, cap
from rlm_engine.sandbox.base import CellClock, CellResult, HostHandler, NamespaceSnapshot
from rlm_engine.sandbox.isolation import ISOLATION_MODES, IsolationMode
from rlm_engine.sandbox.limits import Limits
from rlm_engine.sandbox.local import LocalSandbox

DEFAULT_SNAPSHOT_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_TIMEOUT_S = 300.0
SPARK_START_TIMEOUT_S = 120.0
_DROP_TRIES = 3
"""A snapshot names at most 100 unpicklable variables; dropping them may reveal more."""


@dataclass(frozen=True, slots=True)
class CellJob:
    """What the executor needs to run one artifact (from its row and its files)."""

    artifact_id: str
    code: str
    context: ContextSpec
    namespace_in: Path
    namespace_out: Path
    tools: tuple[str, ...] = ()
    isolation: IsolationMode = "strict"
    memory_mb: int | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    clock: CellClock | None = None
    snapshot_max_bytes: int = DEFAULT_SNAPSHOT_MAX_BYTES
    spark: bool = False
    """Build ``spark`` in the REPL before the cell (Databricks mode, `spark_session`)."""

    @classmethod
    def of(
        cls,
        artifact_id: str,
        code: str,
        meta: Mapping[str, Any],
        folder: Path,
        *,
        timeout_s: float | None = None,
    ) -> CellJob:
        isolation = str(meta.get("isolation") or "strict")
        if isolation not in ISOLATION_MODES:
            raise RLMError(f"artifact {artifact_id}: unknown isolation {isolation!r}")
        memory = meta.get("memory_mb")
        return cls(
            artifact_id=artifact_id,
            code=code,
            context=cast(ContextSpec, meta.get("context") or {"kind": "none"}),
            namespace_in=folder / "namespace.in",
            namespace_out=folder / "namespace.out",
            tools=tuple(str(t) for t in cast(Sequence[Any], meta.get("tools") or ())),
            isolation=isolation,
            memory_mb=int(memory) if memory else None,
            timeout_s=float(timeout_s or meta.get("timeout_s") or DEFAULT_TIMEOUT_S),
            clock=_clock(meta.get("clock")),
            snapshot_max_bytes=int(meta.get("snapshot_max_bytes") or DEFAULT_SNAPSHOT_MAX_BYTES),
            spark=bool(meta.get("spark")),
        )


def _clock(value: object) -> CellClock | None:
    if not isinstance(value, dict):
        return None
    data = cast(dict[str, Any], value)
    reads = data.get("reads")
    return CellClock(
        start=float(data["start"]),
        entropy=None if data.get("entropy") is None else str(data["entropy"]),
        reads=None if reads is None else tuple(int(n) for n in cast(list[Any], reads)),
    )


def clock_json(clock: float | CellClock | None) -> dict[str, Any] | None:
    """How ``execute_at``'s clock is kept in an artifact's metadata."""
    if clock is None:
        return None
    if not isinstance(clock, CellClock):
        return {"start": float(clock), "entropy": None, "reads": None}
    reads = None if clock.reads is None else list(clock.reads)
    return {"start": clock.start, "entropy": clock.entropy, "reads": reads}


@dataclass(frozen=True, slots=True)
class CellRun:
    """The result for ``result.json`` and the full texts for ``stdout.txt``/``stderr.txt``."""

    result: ArtifactResult
    stdout: str
    stderr: str


async def run_cell(job: CellJob, handler: HostHandler) -> CellRun:
    """Run the job's cell; a sandbox that cannot start or restore gives a result with
    ``executor_error`` (the sandbox failed, not the code)."""
    limits = Limits(memory_mb=job.memory_mb) if job.memory_mb else None
    sandbox = LocalSandbox(
        handler,
        tools=job.tools,
        isolation=job.isolation,
        limits=limits,
        output_cap_chars=FILE_CAP_CHARS,
    )
    began = time.monotonic()
    try:
        await sandbox.start()
        await sandbox.load_context(decode_context(job.context))
        if job.namespace_in.exists():
            await sandbox.restore(job.namespace_in.read_bytes())
        if job.spark:
            from rlm_engine.jobs.spark_session import PRELUDE

            await sandbox.execute(PRELUDE, timeout_s=SPARK_START_TIMEOUT_S)
        if job.clock is not None:
            cell = await sandbox.execute_at(job.code, clock=job.clock, timeout_s=job.timeout_s)
        else:
            cell = await sandbox.execute(job.code, timeout_s=job.timeout_s)
        notes: list[str] = []
        if job.spark and sandbox.alive:
            from rlm_engine.jobs.spark_session import FORGET

            await sandbox.execute(FORGET, timeout_s=10.0)
        kept, not_carried = await _keep_namespace(sandbox, cell, job, notes)
        variables = await sandbox.list_vars() if sandbox.alive else {}
    except (RLMError, ValueError, OSError) as exc:
        message = f"{type(exc).__name__}: {exc}"
        result = ArtifactResult(
            job.artifact_id,
            "error",
            error=f"the executor could not run the artifact: {message}",
            duration_s=time.monotonic() - began,
            executor_error=True,
        )
        return CellRun(result, "", "")
    finally:
        await sandbox.close()
    return _cell_run(job, cell, "".join(notes), kept, not_carried, variables)


def _cell_run(
    job: CellJob,
    cell: CellResult,
    notes: str,
    kept: bool,
    not_carried: tuple[str, ...],
    variables: Mapping[str, str],
) -> CellRun:
    stdout, stdout_cut = cap(cell.output, RESULT_CAP_CHARS)
    stderr, stderr_cut = cap(notes, RESULT_CAP_CHARS)
    final = None
    if cell.final is not None:
        fields = None if cell.final.fields is None else dict(cell.final.fields)
        final = {"kind": cell.final.kind, "answer": cell.final.answer, "fields": fields}
    dropped = cell.dropped_chars + len(cell.output) - len(stdout)
    result = ArtifactResult(
        artifact_id=job.artifact_id,
        cell_status=cell.status,
        stdout=stdout,
        stderr=stderr,
        stdout_truncated=stdout_cut or cell.dropped_chars > 0,
        stderr_truncated=stderr_cut,
        duration_s=cell.duration_s,
        error=cell.error,
        final=final,
        snapshot=job.namespace_out.name if kept else None,
        clock_reads=cell.clock_reads,
        dropped_chars=dropped,
        not_carried=not_carried,
        vars=dict(variables),
    )
    return CellRun(result, cell.output, notes)


async def _keep_namespace(
    sandbox: LocalSandbox, cell: CellResult, job: CellJob, notes: list[str]
) -> tuple[bool, tuple[str, ...]]:
    """Snapshot the namespace into ``namespace.out``; returns (kept, names left out)."""
    if cell.status == "killed" or not sandbox.alive:
        return False, ()
    dropped: list[str] = []
    snapshot = await sandbox.snapshot(max_bytes=job.snapshot_max_bytes)
    for _ in range(_DROP_TRIES):
        if snapshot.data is not None or not snapshot.skipped or snapshot.reason:
            break
        # This REPL ends with the artifact, so the names that do not pickle can go; the
        # rest is kept, and the cell's stderr says what the next cell will miss.
        dropped.extend(snapshot.skipped)
        await sandbox.execute(_drop_code(snapshot.skipped), timeout_s=10.0)
        snapshot = await sandbox.snapshot(max_bytes=job.snapshot_max_bytes)
    if dropped:
        notes.append(
            "Not carried over to the next cell (these variables do not pickle): "
            + ", ".join(dropped)
            + "\n"
        )
    if snapshot.data is None:
        notes.append(f"No variables carry over to the next cell: {_why(snapshot)}\n")
        return False, tuple(dropped)
    job.namespace_out.write_bytes(snapshot.data)
    return True, tuple(dropped)


def _why(snapshot: NamespaceSnapshot) -> str:
    if snapshot.reason:
        return snapshot.reason
    if snapshot.skipped:
        return "these variables do not pickle: " + ", ".join(snapshot.skipped)
    return "the REPL kept no snapshot"


def _drop_code(names: Sequence[str]) -> str:
    loop = f"for _rlm_name in {json.dumps(list(names))}:\n"
    return loop + "    globals().pop(_rlm_name, None)\ndel _rlm_name\n"
