"""Restoring a session's REPL from the cells its earlier runs ran.

The REPL is rebuilt by running those cells again, in order, in a fresh sandbox. No root
model is asked anything and no model is called: a sub-call a cell makes is answered with
the reply recorded for it by its call-tree node id (the k-th sub-call of cell ``r/3`` is
``r/3/k``, whatever model answered it then or would answer it now). So the models,
instructions and budgets of the next question are free to differ from the earlier ones.

A session is a convenience, not a replay guarantee: a cell whose output now differs from
its record (time, randomness, a changed file, a sub-call the journal does not hold) is
reported as a warning and the restore goes on.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from rlm_engine.engine.journal import cell_entropy, digest, output_hash
from rlm_engine.engine.loop import Session
from rlm_engine.engine.state import SandboxFactory, Tool
from rlm_engine.errors import RLMError, SandboxError
from rlm_engine.events import Event
from rlm_engine.plugins.base import Block, CellInfo, Plugin
from rlm_engine.plugins.chain import PluginChain
from rlm_engine.sandbox.base import CellClock, CellResult, ContextValue, Sandbox, StartsClock
from rlm_engine.sandbox.cell_clock import setup_code

RECAP_ANSWER_CHARS = 600
RECAP_VARIABLES = 60
SETUP_TIMEOUT_S = 10.0


class SessionRestoreError(RLMError):
    """A session's REPL could not be rebuilt from its earlier runs' cells."""


@dataclass(frozen=True, slots=True)
class PastCell:
    """One cell an earlier run ran in the session's REPL, as its journal has it."""

    node_id: str
    iteration: int
    index: int
    code: str
    instruction: str | None = None
    clock: float | None = None
    """The start its REPL clock was given (``None`` in older journals)."""
    reads: tuple[int, ...] | None = None
    """Its precise-clock reads, to replay (``None``: not recorded)."""
    status: str = "ok"
    """How it ended then: ``ok``, ``error``, ``timeout`` or ``killed``."""
    output_hash: str | None = None
    """``journal.output_hash`` of what it produced then (``None``: not recorded)."""

    @property
    def label(self) -> str:
        return f"cell {self.iteration}.{self.index + 1} ({self.node_id})"


@dataclass(frozen=True, slots=True)
class PastRun:
    """An earlier run of the session: its question, answer, context and root cells."""

    run_id: str
    question: str
    answer: str
    context: ContextValue
    cells: Sequence[PastCell]
    replies: Mapping[str, str]
    """What its cells' sub-calls got back, by node id: model replies and child answers."""


@dataclass(frozen=True, slots=True)
class RestoreWarning:
    run_id: str
    node_id: str
    message: str

    def __str__(self) -> str:
        return f"run {self.run_id}, {self.message}"


@dataclass
class RestoreReport:
    runs: int = 0
    cells: int = 0
    """Cells run again."""
    skipped: int = 0
    """Cells not run: killed then (their effects were lost then too) or blocked now."""
    warnings: list[RestoreWarning] = field(default_factory=list[RestoreWarning])
    variables: dict[str, str] = field(default_factory=dict[str, str])


class _Memory:
    """The session's memory as restored cells see it: the store holds their writes
    already, so writing again would only undo later changes. Their writes stay here."""

    def __init__(self, base: MutableMapping[str, Any]) -> None:
        self._base = base
        self._written: dict[str, Any] = {}

    def get(self, key: str) -> Any:
        if key in self._written:
            return self._written[key]
        return self._base[key]

    def set(self, key: str, value: Any) -> None:
        self._written[key] = value

    def keys(self) -> list[str]:
        return sorted({*self._base, *self._written})


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise SessionRestoreError(f"{name} must be a str, got {type(value).__name__}")
    return value


def _count(value: Any, name: str) -> int:
    if not isinstance(value, list):
        raise SessionRestoreError(f"{name} must be a list of str, got {type(value).__name__}")
    return len(cast(list[Any], value))


class _RestoreHost:
    """Serves the host calls of restored cells: sub-calls from the journal, memory from
    an overlay of the store, tools by calling them (they are the caller's own code)."""

    def __init__(self, memory: MutableMapping[str, Any], tools: Mapping[str, Tool]) -> None:
        self.memory = _Memory(memory)
        self.tools = tools
        self.missing: list[str] = []
        self._run: PastRun | None = None
        self._cell: PastCell | None = None
        self._next = 0

    def begin(self, run: PastRun, cell: PastCell) -> None:
        self._run, self._cell, self._next, self.missing = run, cell, 0, []

    def _node(self) -> str:
        assert self._cell is not None
        node = f"{self._cell.node_id}/{self._next}"
        self._next += 1
        return node

    def _reply(self, node: str) -> str:
        assert self._run is not None and self._cell is not None
        reply = self._run.replies.get(node)
        if reply is None:
            self.missing.append(node)
            raise SessionRestoreError(
                f"run {self._run.run_id}, {self._cell.label}: the journal holds no reply for "
                f"its sub-call {node}, and no model is called while a session is restored"
            )
        return reply

    def _batch(self, count: int) -> list[str]:
        # Each call of a batch has its own node, numbered in the order of the prompts; a
        # call that cannot be answered is an error in its slot, as a failed call is.
        out: list[str] = []
        for _ in range(count):
            try:
                out.append(self._reply(self._node()))
            except SessionRestoreError as exc:
                out.append(f"[error: {type(exc).__name__}: {exc}]")
        return out

    async def __call__(self, method: str, params: Mapping[str, Any]) -> Any:
        if method in ("llm_query", "rlm_query"):
            _text(params.get("prompt"), "prompt")
            return self._reply(self._node())
        if method in ("llm_query_batched", "rlm_query_batched"):
            return self._batch(_count(params.get("prompts"), "prompts"))
        if method == "memory_get":
            return self.memory.get(_text(params.get("key"), "key"))
        if method == "memory_set":
            self.memory.set(_text(params.get("key"), "key"), params.get("value"))
            return None
        if method == "memory_keys":
            return self.memory.keys()
        if method == "tool":
            return await self._tool(params)
        raise SessionRestoreError(f"unknown host method {method!r}")

    async def _tool(self, params: Mapping[str, Any]) -> Any:
        name = _text(params.get("name"), "name")
        tool = self.tools.get(name)
        if tool is None:
            raise SessionRestoreError(f"no tool named {name!r}")
        args: object = params.get("args") or []
        kwargs: object = params.get("kwargs") or {}
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            raise SessionRestoreError("tool args must be a list and kwargs a dict")
        self._node()  # a tool call has a node of its own: later sub-calls keep their ids
        outcome = tool(*cast(list[Any], args), **cast(dict[str, Any], kwargs))
        if inspect.isawaitable(outcome):
            outcome = await outcome
        return json.loads(json.dumps(outcome, default=str))


async def _dropped(event: Event) -> None:
    """Restored cells report nothing: they belong to runs that are over."""


def cell_clock(run_id: str, cell: PastCell) -> CellClock | None:
    """The clock the cell's first run had: its journaled start and precise-clock reads,
    and its entropy seeded from the run and the cell, as on that run."""
    if cell.clock is None:
        return None
    return CellClock(cell.clock, cell_entropy(run_id, cell.node_id), cell.reads)


async def _execute(
    sandbox: Sandbox, code: str, clock: CellClock | None, timeout_s: float
) -> CellResult:
    """Run a cell with the REPL's replay-stable clock as its first run had it."""
    if clock is not None and isinstance(sandbox, StartsClock):
        return await sandbox.execute_at(code, clock=clock, timeout_s=timeout_s)
    if clock is not None:
        await _setup(sandbox, setup_code(clock))
    return await sandbox.execute(code, timeout_s=timeout_s)


async def _setup(sandbox: Sandbox, code: str) -> None:
    result = await sandbox.execute(code, timeout_s=SETUP_TIMEOUT_S)
    if result.status != "ok":
        raise SandboxError(f"could not prepare the REPL for the restore: {result.error}")


def recap(runs: Sequence[PastRun], variables: Mapping[str, str]) -> str:
    """What the root is told first about the session it continues."""
    lines = [
        f"This question continues a session. Its REPL was restored by running the cells of "
        f"its {len(runs)} earlier question(s) again, so their variables are defined "
        "(SHOW_VARS() lists them). The earlier questions and their answers:"
    ]
    for number, run in enumerate(runs, 1):
        answer = " ".join(run.answer.split())
        if len(answer) > RECAP_ANSWER_CHARS:
            answer = answer[:RECAP_ANSWER_CHARS] + " [...]"
        lines.append(f"{number}. {' '.join(run.question.split())}")
        lines.append(f"   answered: {answer or '(no answer)'}")
    shown = [f"{name} ({kind})" for name, kind in list(variables.items())[:RECAP_VARIABLES]]
    if shown:
        more = len(variables) - len(shown)
        lines.append(f"Variables: {', '.join(shown)}" + (f" and {more} more" if more else ""))
    return "\n".join(lines)


class Restorer:
    """Rebuilds a fresh session's REPL from earlier runs (see the module docstring)."""

    def __init__(
        self,
        session: Session,
        sandbox_factory: SandboxFactory,
        *,
        memory: MutableMapping[str, Any],
        tools: Mapping[str, Tool],
        plugins: Sequence[Plugin],
        cell_timeout_s: float,
    ) -> None:
        if session.sandbox is not None or session.booting is not None or session.history:
            raise SessionRestoreError(
                "a session can only be restored into an RLM that has not run a question yet"
            )
        self.session = session
        self._factory = sandbox_factory
        self._host = _RestoreHost(memory, tools)
        self._tools = tuple(tools)
        self._plugins = PluginChain(plugins, _dropped)
        self._timeout = cell_timeout_s
        self.report = RestoreReport()

    async def restore(self, runs: Sequence[PastRun]) -> RestoreReport:
        if not runs:
            return self.report
        session = self.session
        session.host.target = self._host
        try:
            sandbox = self._factory(session.host, self._tools)
            session.sandbox = sandbox
            await sandbox.start()
            # As a journaled run seeds its REPL: the first run's cells draw the same numbers.
            seed = int(digest(runs[0].run_id, "r")[:15], 16)
            await _setup(sandbox, f"import random as _r\n_r.seed({seed})\ndel _r")
            for run in runs:
                await self._restore_run(sandbox, run)
            self.report.variables = await sandbox.list_vars()
        finally:
            session.host.target = None  # the next run's loop serves the REPL from now on
        session.recap = recap(runs, self.report.variables)
        return self.report

    async def _restore_run(self, sandbox: Sandbox, run: PastRun) -> None:
        session = self.session
        if self.report.runs == 0 or run.context != session.context:
            session.context = run.context
            session.meta = await sandbox.load_context(run.context)
        self.report.runs += 1
        for cell in run.cells:
            await self._restore_cell(sandbox, run, cell)

    def _warn(self, run: PastRun, cell: PastCell, message: str) -> None:
        self.report.warnings.append(RestoreWarning(run.run_id, cell.node_id, message))

    async def _restore_cell(self, sandbox: Sandbox, run: PastRun, cell: PastCell) -> None:
        if cell.status == "killed":
            self.report.skipped += 1
            return
        info = CellInfo(
            run_id=run.run_id,
            node_id=cell.node_id,
            depth=0,
            iteration=cell.iteration,
            cell_index=cell.index,
            code=cell.code,
            instruction=cell.instruction,
        )
        # The plugins that guard cells now guard restored cells too: a restore never runs
        # code the current settings would refuse.
        verdict = await self._plugins.before_cell(info)
        if isinstance(verdict.decision, Block):
            self.report.skipped += 1
            self._warn(run, cell, f"{cell.label} was not run: {verdict.decision.reason}")
            return
        self._host.begin(run, cell)
        clock = cell_clock(run.run_id, cell)
        result = await _execute(sandbox, verdict.code, clock, self._timeout)
        self.report.cells += 1
        if result.status == "killed":
            raise SessionRestoreError(
                f"run {run.run_id}, {cell.label} killed the REPL while the session was being "
                "restored, so its earlier variables are lost",
                hint="ask the question without --session, or in a new session",
            )
        if cell.output_hash is not None and output_hash(result) != cell.output_hash:
            why = ""
            if self._host.missing:
                why = f" (the journal holds no reply for {', '.join(self._host.missing)})"
            self._warn(run, cell, f"{cell.label}: its output differs from the recorded one{why}")
