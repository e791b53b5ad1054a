"""``ArtifactSandbox``: a sandbox whose every cell is an artifact run by ``rlm-executor``.

The engine sees a plain ``Sandbox``. Each ``execute`` creates a registry row (``pending``)
and the artifact's ``code.py``, starts one ``rlm-executor`` process for it, waits, and
reads its ``result.json`` (or, failing that, the markers in its log). Variables persist
from cell to cell as namespace snapshots: an artifact's ``namespace.out`` becomes the
next one's ``namespace.in``. The cell's host calls come back through a ``RelayServer``
to the handler the engine gave the factory, so budgets, the journal and child RLMs stay
in this run.

Artifact ids are derived, not random: a hash of the run, the previous artifact (or, for
the first cell of a sandbox, the context and the sandbox's ordinal among this factory's
sandboxes of that context) and the code. A resumed run therefore meets the artifacts it
ran before: a finished one returns its recorded result without a process, an executing
one whose executor still lives is waited for, and one whose executor died runs again.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, cast

from rlm_engine.errors import ConfigurationError, SandboxDied, SandboxError
from rlm_engine.jobs import markers
from rlm_engine.jobs.artifact_context import ContextSpec, context_identity, encode_context
from rlm_engine.jobs.artifact_result import ArtifactResult
from rlm_engine.jobs.artifacts import (
    NAMESPACE_IN,
    NAMESPACE_OUT,
    RESULT_FILE,
    Artifact,
    ArtifactRegistry,
)
from rlm_engine.jobs.executor_process import (
    EXECUTOR_LOG,
    Exit,
    executor_env,
    running_elsewhere,
    spawn_and_wait,
    wait_elsewhere,
)
from rlm_engine.jobs.executor_run import DEFAULT_SNAPSHOT_MAX_BYTES, clock_json
from rlm_engine.jobs.relay import RelayServer
from rlm_engine.sandbox.base import (
    CellClock,
    CellResult,
    ContextMeta,
    ContextValue,
    HostHandler,
    NamespaceSnapshot,
    SandboxFactory,
)
from rlm_engine.sandbox.isolation import ISOLATION_MODES, IsolationMode

SNAPSHOT_MAGIC = b"RLM-ARTIFACT-NAMESPACE 1 "
"""The header of ``snapshot()`` bytes: the artifact whose ``namespace.out`` they are."""
DEFAULT_STARTUP_GRACE_S = 60.0
"""Beyond the cell's limit, how long an executor may take to start, restore and report."""
ID_CHARS = 20


def artifact_id(run_id: str, anchor: str, code: str) -> str:
    """The id of the artifact running ``code`` after ``anchor`` (the previous artifact,
    or a sandbox's start key) in run ``run_id``."""
    text = "\0".join((run_id, anchor, code))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:ID_CHARS]


def wrap_snapshot(source_id: str, data: bytes) -> bytes:
    return SNAPSHOT_MAGIC + source_id.encode("ascii") + b"\n" + data


def unwrap_snapshot(data: bytes) -> tuple[str, bytes]:
    """(the artifact it came from, the namespace bytes); ``SandboxError`` if foreign."""
    header, newline, body = data.partition(b"\n")
    if not newline or not header.startswith(SNAPSHOT_MAGIC):
        raise SandboxError("this snapshot was not taken by an artifact sandbox")
    return header[len(SNAPSHOT_MAGIC) :].decode("ascii", "replace"), body


class ArtifactLauncher(Protocol):
    """Runs one artifact's executor somewhere else than this machine (a Databricks job
    run) and waits for it; leaves the run's log as the artifact's ``executor.log``."""

    async def launch(
        self, registry: ArtifactRegistry, artifact_id: str, timeout_s: float
    ) -> Exit: ...

    async def adopt(
        self, registry: ArtifactRegistry, artifact: Artifact, timeout_s: float
    ) -> Exit | None:
        """Wait for the run an unfinished artifact's row names if it is still going (a
        resumed orchestrator); None when there is none, so the artifact runs again."""
        ...


class ArtifactSandboxFactory:
    """Builds ``ArtifactSandbox``es for one run (a ``SandboxFactory``).

    ``isolation`` and ``memory_mb`` apply to the sandbox each executor starts;
    ``executor_argv`` is how an executor is started (default: this interpreter with
    ``-m rlm_engine.jobs.executor``); ``env`` the environment it gets (default: a few
    variables of this process, never credentials); ``startup_grace_s`` how long past the
    cell's limit an executor may run before its process group is killed; ``poll_s`` how
    often an executor started elsewhere is checked. ``launcher``, when given, runs each
    executor instead of a local process (``executor_argv`` and ``env`` are then unused).
    ``metadata`` is added to every artifact's row (what that executor needs to know).
    ``spawns`` counts executors started.
    """

    def __init__(
        self,
        registry: ArtifactRegistry,
        *,
        run_id: str,
        session_id: str,
        isolation: str = "strict",
        memory_mb: int | None = None,
        executor_argv: Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
        startup_grace_s: float = DEFAULT_STARTUP_GRACE_S,
        poll_s: float = 0.2,
        launcher: ArtifactLauncher | None = None,
        metadata: Mapping[str, object] | None = None,
    ) -> None:
        if isolation not in ISOLATION_MODES:
            raise ConfigurationError(
                f"isolation must be one of {', '.join(ISOLATION_MODES)}, not {isolation!r}"
            )
        if memory_mb is not None and memory_mb <= 0:
            raise ConfigurationError("memory_mb must be positive (or None for the default)")
        self.registry = registry
        self.run_id = run_id
        self.session_id = session_id
        self.isolation: IsolationMode = isolation
        self.memory_mb = memory_mb
        self.executor_argv = tuple(
            executor_argv or (sys.executable, "-m", "rlm_engine.jobs.executor")
        )
        self.env = dict(env) if env is not None else executor_env(os.environ)
        self.startup_grace_s = startup_grace_s
        self.poll_s = poll_s
        self.launcher = launcher
        self.metadata = dict(metadata or {})
        self.spawns = 0
        self._ordinals: dict[str, int] = {}

    def start_key(self, identity: str) -> str:
        """The anchor of a new sandbox's first artifact: the context and how many
        sandboxes of this factory had that context before (the same on a resume)."""
        ordinal = self._ordinals.get(identity, 0)
        self._ordinals[identity] = ordinal + 1
        return f"start:{identity}:{ordinal}"

    def __call__(self, handler: HostHandler, reserved_tools: Sequence[str] = ()) -> ArtifactSandbox:
        return ArtifactSandbox(self, handler, tuple(reserved_tools))


class ArtifactSandbox:
    """One REPL seen by the engine; each cell an artifact run by its own executor
    (implements ``Sandbox``, ``StartsClock``, ``SnapshotsNamespace``, ``DescribesContext``)."""

    def __init__(
        self, factory: ArtifactSandboxFactory, handler: HostHandler, tools: tuple[str, ...]
    ) -> None:
        self._factory = factory
        self._registry = factory.registry
        self._handler = handler
        self._tools = tools
        self._relay = RelayServer(parent=None)
        self._lock = asyncio.Lock()
        self._started = False
        self._closed = False
        self._dead = False
        self._context: ContextSpec = {"kind": "none"}
        self._start_key: str | None = None
        self._parent: str | None = None
        self._namespace: bytes | None = None
        self._namespace_from: str | None = None
        self._last: ArtifactResult | None = None
        self._last_digest: str | None = None
        self._iteration = 0
        self.last_artifact_id: str | None = None

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        return self._started and not self._closed and not self._dead

    async def start(self) -> None:
        if self._closed:
            raise SandboxDied("the sandbox is closed; create a new one")
        if self._started:
            return
        await self._relay.start()
        self._started = True

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._relay.close()

    def _require_alive(self) -> None:
        if self._closed:
            raise SandboxDied("the sandbox is closed; create a new one")
        if not self._started:
            raise SandboxError("the sandbox is not started; call start() first")
        if self._dead:
            raise SandboxDied("the REPL's last executor was killed; its variables are lost")

    # -- context ------------------------------------------------------------------------

    def _contexts_key(self) -> str:
        return f"{self._factory.session_id}/contexts"

    def _encode_context(self, value: ContextValue) -> ContextSpec:
        """The context's spec; its stored files go where the executors read them."""
        files = self._registry.files
        local = files.local_root()
        if local is not None:
            return encode_context(value, local / self._contexts_key())
        import tempfile

        from rlm_engine.jobs.artifact_files import upload_context

        with tempfile.TemporaryDirectory(prefix="rlm-context-") as tmp:
            return upload_context(files, encode_context(value, Path(tmp)), self._contexts_key())

    async def load_context(self, value: ContextValue) -> ContextMeta:
        """Keep the context for the executors to load (paths stay paths; text and data
        are written once under the session's ``contexts``) and describe it exactly as
        the REPL will."""
        self._require_alive()
        meta = await asyncio.to_thread(self.describe_context, value)
        self._context = await asyncio.to_thread(self._encode_context, value)
        if self._start_key is None:
            self._start_key = self._factory.start_key(context_identity(self._context))
        return meta

    def describe_context(self, value: ContextValue) -> ContextMeta:
        from rlm_engine.sandbox.context_meta import describe_context

        return describe_context(value)

    # -- cells --------------------------------------------------------------------------

    async def execute(self, code: str, *, timeout_s: float) -> CellResult:
        return await self._execute(code, timeout_s, None)

    async def execute_at(
        self, code: str, *, clock: float | CellClock, timeout_s: float
    ) -> CellResult:
        return await self._execute(code, timeout_s, clock)

    async def _execute(
        self, code: str, timeout_s: float, clock: float | CellClock | None
    ) -> CellResult:
        self._require_alive()
        async with self._lock:
            self._require_alive()
            if self._start_key is None:
                self._start_key = self._factory.start_key(context_identity(self._context))
            self._iteration += 1
            anchor = self._parent or self._start_key
            aid = artifact_id(self._factory.run_id, anchor, code)
            self.last_artifact_id = aid
            result = await self._artifact_result(aid, code, timeout_s, clock)
            await asyncio.to_thread(self._consumed, aid)
            await asyncio.to_thread(self._adopt, aid, result)
            return result.cell_result()

    async def _artifact_result(
        self, aid: str, code: str, timeout_s: float, clock: float | CellClock | None
    ) -> ArtifactResult:
        existing = await asyncio.to_thread(self._registry.get, aid)
        if existing is not None and existing.finished:
            # Never run a finished artifact again, even when its files are gone.
            return await asyncio.to_thread(self._recorded, aid) or _unrecorded(aid, existing.status)
        if existing is not None and existing.status == "executing":
            pid = running_elsewhere(existing.metadata, aid)
            if pid is not None:
                deadline = timeout_s + self._factory.startup_grace_s
                ended = await wait_elsewhere(pid, aid, deadline, self._factory.poll_s)
                recorded = await asyncio.to_thread(self._recorded, aid)
                return recorded or await self._lost(aid, killed=not ended, code=None)
        launcher = self._factory.launcher
        if existing is not None and launcher is not None:
            ended = await launcher.adopt(self._registry, existing, timeout_s)
            if ended is not None:
                return await self._ended(aid, ended)
        if existing is None:
            await asyncio.to_thread(self._create, aid, code, timeout_s, clock)
        await asyncio.to_thread(self._stage_namespace, aid)
        return await self._spawn(aid, timeout_s)

    def _create(
        self, aid: str, code: str, timeout_s: float, clock: float | CellClock | None
    ) -> Artifact:
        metadata = {
            "context": self._context,
            "tools": list(self._tools),
            "isolation": self._factory.isolation,
            "memory_mb": self._factory.memory_mb,
            "timeout_s": timeout_s,
            "clock": clock_json(clock),
            "parent": self._parent,
            "start_key": self._start_key if self._parent is None else None,
            "snapshot_max_bytes": DEFAULT_SNAPSHOT_MAX_BYTES,
            **self._factory.metadata,
        }
        return self._registry.create(
            aid,
            session_id=self._factory.session_id,
            invocation_id=self._factory.run_id,
            iteration=self._iteration,
            code=code,
            metadata=metadata,
        )

    def _stage_namespace(self, aid: str) -> None:
        key = self._registry.key(aid, NAMESPACE_IN)
        if self._namespace is None:
            self._registry.files.delete(key)
            return
        self._registry.files.write_bytes(key, self._namespace)

    async def _spawn(self, aid: str, timeout_s: float) -> ArtifactResult:
        files = self._registry.files
        # a dead executor's leftovers
        await asyncio.to_thread(files.delete, self._registry.key(aid, RESULT_FILE))
        launcher = self._factory.launcher
        if launcher is not None:
            self._factory.spawns += 1
            ended = await launcher.launch(self._registry, aid, timeout_s)
            return await self._ended(aid, ended)
        folder = self._registry.dir_for(aid)
        token = self._relay.open(self._handler)
        argv = [
            *self._factory.executor_argv,
            "--artifact-id",
            aid,
            "--mode",
            "local",
            "--lakehouse",
            self._registry.lake.root,
            "--files-root",
            str(self._registry.files_root),
            "--relay",
            str(self._relay.path),
            "--die-with-parent",
            "--timeout",
            repr(float(timeout_s)),
        ]
        self._factory.spawns += 1
        try:
            ended = await spawn_and_wait(
                argv,
                token=token,
                log_path=folder / EXECUTOR_LOG,
                env=self._factory.env,
                deadline_s=timeout_s + self._factory.startup_grace_s,
            )
        finally:
            self._relay.revoke(token)
        return await self._ended(aid, ended)

    async def _ended(self, aid: str, ended: Exit) -> ArtifactResult:
        if ended.killed:
            return await self._lost(aid, killed=True, code=None)
        recorded = await asyncio.to_thread(self._recorded, aid)
        return recorded or await self._lost(aid, killed=False, code=ended.returncode)

    def _recorded(self, aid: str) -> ArtifactResult | None:
        """The artifact's ``result.json``, else the output between its markers in the
        executor's log, else None."""
        import json

        files = self._registry.files
        raw = files.read_bytes(self._registry.key(aid, RESULT_FILE))
        if raw is not None:
            try:
                data = json.loads(raw)
            except ValueError:
                data = None
            if isinstance(data, dict):
                return ArtifactResult.from_json(cast(dict[str, object], data))
        try:
            log_bytes = files.read_bytes(self._registry.key(aid, EXECUTOR_LOG))
        except OSError:
            return None
        if log_bytes is None:
            return None
        log = log_bytes.decode("utf-8", "replace")
        parsed = markers.parse(log, aid)
        if parsed is None:
            return None
        body, status = parsed
        ok = status == "success"
        error = None if ok else "the cell failed (its result.json is missing; see the output)"
        return ArtifactResult(aid, "ok" if ok else "error", stdout=body, error=error)

    async def _lost(self, aid: str, *, killed: bool, code: int | None) -> ArtifactResult:
        """The result of an executor that left no result: the REPL is gone."""
        if killed:
            why = (
                "the executor ran past the cell's limit and its start-up grace "
                f"({self._factory.startup_grace_s:g} s) and was killed"
            )
        else:
            why = f"the executor exited (status {code}) without a result"
        log = self._registry.files.where(self._registry.key(aid, EXECUTOR_LOG))
        error = (
            f"SandboxKilled: {why}; see {log}. The REPL process is gone "
            "and all its variables are lost; a new sandbox must be started."
        )
        result = ArtifactResult(aid, "killed", error=error)
        await asyncio.to_thread(
            self._registry.mark,
            aid,
            "failed",
            metadata={"cell_status": "killed", "exit_code": code, "killed": killed},
        )
        return result

    def _consumed(self, aid: str) -> None:
        import time

        current = self._registry.get(aid)
        if current is not None and current.finished and current.consumed_time is None:
            self._registry.mark(aid, current.status, consumed_time=time.time())

    def _adopt(self, aid: str, result: ArtifactResult) -> None:
        """The artifact's outcome becomes the REPL's state for the next cell."""
        if result.executor_error:
            return  # nothing ran: the REPL is as it was, and the artifact runs again later
        self._last = result
        self._parent = aid
        if result.cell_status == "killed":
            self._dead = True
            self._namespace = None
            self._namespace_from = None
            return
        data: bytes | None = None
        if result.snapshot:
            data = self._registry.files.read_bytes(self._registry.key(aid, NAMESPACE_OUT))
        self._namespace = data
        self._namespace_from = aid if data is not None else None

    async def list_vars(self) -> dict[str, str]:
        return dict(self._last.vars) if self._last is not None else {}

    # -- snapshots ----------------------------------------------------------------------

    async def snapshot(self, *, max_bytes: int) -> NamespaceSnapshot:
        """The last artifact's ``namespace.out`` with a header naming that artifact."""
        skipped = self._last.not_carried if self._last is not None else ()
        if self._namespace is None or self._namespace_from is None:
            return NamespaceSnapshot(None, skipped=skipped, reason="the REPL kept no snapshot")
        data = wrap_snapshot(self._namespace_from, self._namespace)
        if len(data) > max_bytes:
            return NamespaceSnapshot(
                None, skipped=skipped, reason=f"the namespace is more than {max_bytes:,} bytes"
            )
        digest = hashlib.sha256(data).hexdigest()
        if digest == self._last_digest:
            return NamespaceSnapshot(None, unchanged=True, skipped=skipped)
        self._last_digest = digest
        return NamespaceSnapshot(data, skipped=skipped)

    async def restore(self, data: bytes) -> None:
        """The next artifact starts from this snapshot, and follows the artifact it came
        from (so a resumed run meets the same artifact ids)."""
        source, body = unwrap_snapshot(data)
        async with self._lock:
            self._namespace = body
            self._namespace_from = source
            self._parent = source
            self._last_digest = None


def _unrecorded(aid: str, status: str) -> ArtifactResult:
    return ArtifactResult(
        aid,
        "error",
        error=f"SandboxError: artifact {aid} is {status} but its result.json and log are "
        "gone, so its outcome is unknown; it is not run twice. Run the step again in "
        "another way, or restore the artifact's files.",
    )


if TYPE_CHECKING:
    # Static proof that the factory fits the engine's SandboxFactory.
    _factory_check: SandboxFactory = cast(ArtifactSandboxFactory, None)
