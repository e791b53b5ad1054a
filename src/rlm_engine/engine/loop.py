"""One RLM run at one depth: root turns, cells, finals and stop reasons."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import ValidationError

from rlm_engine.engine import prompts
from rlm_engine.engine.broker import Broker
from rlm_engine.engine.calls import call_model
from rlm_engine.engine.caps import answer_refusal
from rlm_engine.engine.capsule import compact, needs_compaction
from rlm_engine.engine.closing import failure_text
from rlm_engine.engine.divergence import Divergences
from rlm_engine.engine.host_relay import HostRelay
from rlm_engine.engine.journal import digest, journal_cell_start
from rlm_engine.engine.output import digest_output, truncate_middle
from rlm_engine.engine.parsing import Cell, ParsedReply, parse_reply
from rlm_engine.engine.result import StopReason
from rlm_engine.engine.snapshots import SnapshotTaker, restore_latest
from rlm_engine.engine.state import TreeState
from rlm_engine.engine.tree import CallNode
from rlm_engine.errors import ChildRunFailed, ErrorCause, RLMError, SandboxError
from rlm_engine.events import (
    CellBlocked,
    CellFinished,
    CellStarted,
    ContextLoaded,
    DigestFinished,
    DigestStarted,
    Final,
    IterationFinished,
    IterationStarted,
    Origin,
    SandboxRestarted,
)
from rlm_engine.plugins.base import Block, CellInfo
from rlm_engine.sandbox import cell_clock
from rlm_engine.sandbox.base import (
    CellClock,
    CellResult,
    ContextMeta,
    ContextValue,
    DescribesContext,
    FinalValue,
    Sandbox,
    StartsClock,
)
from rlm_engine.types import Message

STAGNATION_NUDGE_AT = 3
log = logging.getLogger("rlm_engine.engine")


def _restart_note(restored: bool, cells: int) -> str:
    if cells == 0:
        return "Nothing had run before it; `context` is loaded again."
    if restored:
        return (
            f"Your variables were restored by replaying the {cells} earlier cell(s) "
            "(their sub-calls answered from the journal); this cell's own effects are lost."
        )
    return (
        "Replaying the earlier cells did not complete, so some variables may be missing: "
        "check with SHOW_VARS()."
    )


@dataclass
class Session:
    """What outlives one run of a persistent RLM: the REPL, its context and the history.

    ``booting`` is the sandbox still starting in the background (see ``RunLoop._open``).
    """

    sandbox: Sandbox | None = None
    meta: ContextMeta | None = None
    history: list[Message] = field(default_factory=list[Message])
    context: ContextValue = None
    booting: asyncio.Task[Sandbox] | None = None
    host: HostRelay = field(default_factory=HostRelay)
    """The sandbox's host handler: it serves whichever run uses the session now."""
    recap: str = ""
    """For the first prompt of a session restored from recorded cells (it has no history)."""

    async def settle(self) -> None:
        """Wait for a sandbox still starting; a failed start is dropped (the next use
        starts another and reports its error)."""
        booting, self.booting = self.booting, None
        if booting is not None:
            await asyncio.gather(booting, return_exceptions=True)

    async def close(self) -> None:
        """Stop a sandbox still starting and close the started one."""
        booting, self.booting = self.booting, None
        if booting is not None:
            booting.cancel()
            await asyncio.gather(booting, return_exceptions=True)
        if self.sandbox is not None:
            await self.sandbox.close()
            self.sandbox = None


@dataclass(frozen=True, slots=True)
class Outcome:
    stop_reason: StopReason
    answer: str = ""
    fields: dict[str, Any] | None = None
    detail: str = ""
    cause: ErrorCause | None = None


@dataclass
class _Repeats:
    """Counts identical consecutive turns (same code, or same error)."""

    last_code: str | None = None
    code_count: int = 0
    last_error: str | None = None
    error_count: int = 0

    def see(self, code: str, error: str | None) -> int:
        digest = hashlib.sha256(code.strip().encode()).hexdigest()
        self.code_count = self.code_count + 1 if digest == self.last_code else 1
        self.last_code = digest
        if error is None:
            self.error_count, self.last_error = 0, None
        else:
            self.error_count = self.error_count + 1 if error == self.last_error else 1
            self.last_error = error
        return max(self.code_count, self.error_count)


def _error_signature(result: CellResult) -> str | None:
    if result.status == "ok" or not result.error:
        return None
    lines = [ln for ln in result.error.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else result.status


async def _setup(sandbox: Sandbox, code: str, what: str) -> None:
    """Run engine code in the REPL that the root never sees."""
    result = await sandbox.execute(code, timeout_s=10.0)
    if result.status != "ok":
        raise SandboxError(f"could not {what} the REPL: {result.error}")


class RunLoop:
    """Drives one run: the root model writes code, the sandbox runs it, until a stop."""

    def __init__(
        self,
        state: TreeState,
        *,
        question: str,
        session: Session,
        node: CallNode,
        depth: int,
    ) -> None:
        self.state = state
        self.question = question
        self.session = session
        self.node = node
        self.depth = depth
        self.iterations = 0
        self._cell_node = node
        self._repeats = _Repeats()
        # (cell node id, code, clock) of every cell that ran to an end, for restoring after a
        # kill.
        self._executed: list[tuple[str, str, CellClock | None]] = []
        self._nudged_stagnation = False
        self._described: ContextMeta | None = None
        self.broker = Broker(
            state, depth=depth, spawn_child=self._spawn_child, current_node=lambda: self._cell_node
        )
        self._snapshots = SnapshotTaker(state.journal)
        self._divergences = Divergences(
            state.journal,
            run_id=state.run_id,
            swap=self._swap_sandbox,
            adopt=self._adopt,
            restarted=self._restarted,
        )
        session.host.target = self.broker

    # -- plumbing -------------------------------------------------------------------------

    def _common(self, node: CallNode | None = None) -> Origin:
        return Origin(run_id=self.state.run_id, node_id=(node or self.node).id, depth=self.depth)

    async def _spawn_child(self, prompt: str, context: Any, node: CallNode) -> str:
        child = RunLoop(
            self.state,
            question=prompt,
            session=Session(context=context),
            node=node,
            depth=self.depth + 1,
        )
        failure: RLMError | None = None
        try:
            outcome = await child.run()
        except RLMError as exc:
            # The child stops as a root would (an ``error`` stop) and the cell that asked
            # gets a ChildRunFailed naming it; a cancellation or a bug goes on as it is.
            failure = exc
            detail = f"{type(exc).__name__}: {exc}"
            outcome = Outcome("error", detail=detail, cause=ErrorCause.of(exc))
        finally:
            await child.close()
        node.detail["stop_reason"] = outcome.stop_reason
        node.detail["iterations"] = child.iterations
        if outcome.stop_reason == "error":
            node.status = "error"
            raise ChildRunFailed(outcome.stop_reason, outcome.detail, node_id=node.id) from failure
        return outcome.answer

    def _new_sandbox(self) -> Sandbox:
        return self.state.sandbox_factory(self.session.host, tuple(self.state.tools))

    async def _start_sandbox(self) -> Sandbox:
        return await self._boot(self._new_sandbox())

    async def _boot(self, sandbox: Sandbox) -> Sandbox:
        await sandbox.start()
        self.session.sandbox = sandbox
        meta = await sandbox.load_context(self.session.context)
        self.session.meta = meta
        if self.state.journal is not None:
            await self._seed_randomness(sandbox)
        await self.state.emit(
            ContextLoaded(
                **self._common(),
                context_type=meta.type,
                total_chars=meta.total_chars,
                files=meta.files,
            )
        )
        return sandbox

    async def _seed_randomness(self, sandbox: Sandbox) -> None:
        """A journaled run seeds the REPL's ``random`` from its run and node ids, so a
        replay draws the same numbers (``hash()`` order of sets is not stable)."""
        seed = int(digest(self.state.run_id, self.node.id)[:15], 16)
        await _setup(sandbox, f"import random as _r\n_r.seed({seed})\ndel _r", "seed")

    async def _start_clock(self, sandbox: Sandbox, clock: CellClock | None) -> None:
        """Start the REPL's replay-stable clock at the cell's journaled time
        (``sandbox.worker_clock``); without a journal the REPL keeps the real clock."""
        if clock is None:
            return
        await _setup(sandbox, cell_clock.setup_code(clock), "set the clock of")

    async def _execute(self, sandbox: Sandbox, code: str, clock: CellClock | None) -> CellResult:
        """Run a cell with the REPL's clock started at ``clock`` (one round trip where the
        sandbox takes the clock with the cell)."""
        timeout = self._cell_timeout()
        if clock is not None and isinstance(sandbox, StartsClock):
            return await sandbox.execute_at(code, clock=clock, timeout_s=timeout)
        await self._start_clock(sandbox, clock)
        return await sandbox.execute(code, timeout_s=timeout)

    async def _sandbox(self) -> Sandbox:
        booting = self.session.booting
        if booting is not None:
            self.session.booting = None
            sandbox = await booting
            if self._described is not None and self.session.meta != self._described:
                log.warning(
                    "the context description computed on the host (%s) differs from the "
                    "sandbox's (%s); the root's first prompt had the host's",
                    self._described,
                    self.session.meta,
                )
            return sandbox
        sandbox = self.session.sandbox
        if sandbox is None or not sandbox.alive:
            sandbox = await self._start_sandbox()
        return sandbox

    async def _open(self) -> ContextMeta | None:
        """Get the sandbox going and return the context description for the first
        prompt (``None`` when the prompt continues a session's history).

        The sandbox is first needed by a cell, so it starts in the background while the
        first root call is in flight whenever the prompt does not need it: the history
        needs no description, and a sandbox that can describe the context on the host
        (``DescribesContext``) gives the same one the worker will. Otherwise the context
        is loaded before the first call."""
        session = self.session
        sandbox = session.sandbox
        if session.booting is None and (sandbox is None or not sandbox.alive):
            fresh = self._new_sandbox()
            session.booting = asyncio.create_task(self._boot(fresh))
            if session.history:
                return None
            if isinstance(fresh, DescribesContext):
                meta = await asyncio.to_thread(fresh.describe_context, session.context)
                if meta is not None:
                    self._described = meta
                    return meta
        if session.history:
            return None
        await self._sandbox()
        return session.meta

    async def close(self) -> None:
        await self._snapshots.cancel()
        await self.session.close()

    # -- the loop -------------------------------------------------------------------------

    def _initial_messages(self, meta: ContextMeta | None) -> list[Message]:
        cfg = self.state.config
        schema = self.state.output_schema
        schema_text = json.dumps(schema.model_json_schema()) if schema is not None else None
        if self.session.history:
            return [*self.session.history, Message("user", f"New question: {self.question}")]
        assert meta is not None
        system = prompts.system_prompt(
            max_output_chars=cfg.max_output_chars,
            max_concurrency=cfg.max_concurrency,
            can_recurse=self.broker.can_recurse,
            has_schema=schema is not None,
            tools=tuple(self.state.tools),
            custom=cfg.system_prompt,
        )
        first = prompts.first_user_message(self.question, meta, schema_text)
        if self.session.recap:
            first = f"{self.session.recap}\n\n{first}"
        return [
            Message("system", system),
            Message("user", f"{first}\n\n{prompts.FIRST_TURN_GUARD}"),
        ]

    async def run(self) -> Outcome:
        messages = self._initial_messages(await self._open())
        try:
            for iteration in range(1, self.state.config.max_iterations + 1):
                spent = self.state.budget.exceeded()
                if spent is not None:
                    reason: StopReason = "timeout" if spent.budget == "time" else "budget"
                    detail = f"{spent.budget}: {spent}"
                    return Outcome(reason, detail=detail, cause=ErrorCause.of(spent))
                self.iterations = iteration
                outcome = await self._iteration(messages, iteration)
                if outcome is not None:
                    return outcome
                if needs_compaction(self.state, messages):
                    node = self.node.add("capsule", label="history capsule")
                    messages[:] = await compact(self.state, messages, node=node, depth=self.depth)
            return await self._forced_final(messages)
        finally:
            self.session.history = messages
            await self._snapshots.settle()  # kept before the journal's last flush

    async def _iteration(self, messages: list[Message], iteration: int) -> Outcome | None:
        """One iteration between its started and finished events, closed however it ends."""
        common = self._common()
        await self.state.emit(IterationStarted(**common, iteration=iteration))
        try:
            outcome = await self._turn(messages, iteration)
        except BaseException as exc:
            await self.state.emit(
                IterationFinished(
                    **common, iteration=iteration, status="failed", error=failure_text(exc)
                )
            )
            raise
        await self.state.emit(IterationFinished(**common, iteration=iteration, status="ok"))
        return outcome

    async def _root_reply(self, messages: list[Message], iteration: int) -> str:
        node = self.node.add("root_turn", label=f"iteration {iteration}", iteration=iteration)
        completion = await call_model(
            self.state,
            self.state.root_model,
            messages,
            role="root",
            node=node,
            depth=self.depth,
            settings=self.state.config.root_settings,
        )
        messages.append(Message("assistant", completion.text))
        return completion.text

    async def _turn(self, messages: list[Message], iteration: int) -> Outcome | None:
        parsed = parse_reply(await self._root_reply(messages, iteration))
        if not parsed.cells:
            return await self._reply_without_code(parsed, messages, iteration)
        outputs: list[str] = []
        errors: list[str] = []
        for index, cell in enumerate(parsed.cells):
            result = await self._run_cell(cell, iteration, index)
            outputs.append(await self._shape_output(result, cell, iteration, index))
            if (sig := _error_signature(result)) is not None:
                errors.append(sig)
            if result.final is not None:
                outcome, problem = await self._accept(result.final)
                if outcome is not None:
                    return outcome
                outputs.append(problem)
        code = "\n".join(c.code for c in parsed.cells)
        repeats = self._repeats.see(code, errors[-1] if errors else None)
        nudge: str | None = None
        if repeats > STAGNATION_NUDGE_AT and self._nudged_stagnation:
            return Outcome("stagnation", detail=f"same step repeated {repeats} times after a nudge")
        if repeats >= STAGNATION_NUDGE_AT:
            nudge, self._nudged_stagnation = prompts.STAGNATION_NUDGE, True
        budget_line = self.state.budget.describe()
        feedback = prompts.turn_feedback(outputs, self.question, budget_line, iteration, nudge)
        if (changed := self._divergences.note()) is not None:
            feedback = f"{changed}\n\n{feedback}"
        messages.append(Message("user", feedback))
        return None

    async def _reply_without_code(
        self, parsed: ParsedReply, messages: list[Message], iteration: int
    ) -> Outcome | None:
        guard_applies = (
            iteration == 1 and self.session.context is not None and not self.session.history[:1]
        )
        if parsed.has_final and not guard_applies:
            outcome, problem = await self._final_from_text(parsed)
            if outcome is not None:
                return outcome
            messages.append(Message("user", problem))
            return None
        nudge = prompts.FIRST_TURN_GUARD if parsed.has_final else prompts.NO_CODE_NUDGE
        messages.append(Message("user", f"{nudge}\n\nRemember the question: {self.question}"))
        return None

    async def _final_from_text(self, parsed: ParsedReply) -> tuple[Outcome | None, str]:
        if parsed.final_var is not None:
            sandbox = await self._sandbox()
            result = await sandbox.execute(
                f"FINAL_VAR({parsed.final_var!r})", timeout_s=self.state.config.cell_timeout_s
            )
            if result.final is None:
                return None, f"FINAL_VAR failed:\n{result.error or result.output}"
            return await self._accept(result.final)
        return await self._accept(FinalValue(kind="final", answer=parsed.final_answer or ""))

    async def _accept(self, final: FinalValue) -> tuple[Outcome | None, str]:
        """Turn a FINAL/SUBMIT into an outcome, validating against the output schema."""
        refused = answer_refusal(final.kind, final.answer, self.state.config.max_answer_bytes)
        if refused is not None:
            return None, refused
        schema = self.state.output_schema
        if schema is None:
            if final.kind == "submit":
                fields = dict(final.fields or {})
                answer = json.dumps(fields, ensure_ascii=False, default=str)
                return await self._done(Outcome("submitted", answer=answer, fields=fields)), ""
            return await self._done(Outcome("final", answer=final.answer)), ""
        try:
            if final.kind == "submit":
                value = schema.model_validate(dict(final.fields or {}))
            else:
                value = schema.model_validate_json(final.answer)
        except ValidationError as exc:
            return None, (
                "SUBMIT was rejected: the fields do not match the required schema.\n"
                f"{exc}\nFix the values and call SUBMIT(...) again."
            )
        fields = value.model_dump(mode="json")
        outcome = Outcome("submitted", answer=value.model_dump_json(), fields=fields)
        return await self._done(outcome), ""

    async def _done(self, outcome: Outcome) -> Outcome:
        await self.state.emit(Final(**self._common(), answer=outcome.answer, fields=outcome.fields))
        return outcome

    async def _forced_final(self, messages: list[Message]) -> Outcome:
        messages.append(Message("user", prompts.FORCED_FINAL))
        reply = await self._root_reply(messages, self.iterations + 1)
        parsed = parse_reply(reply)
        if not parsed.has_final:
            # Prose without FINAL is not an answer; reporting it as one would hide the stop.
            return Outcome("max_iterations", detail="no FINAL in the forced final turn")
        outcome, problem = await self._final_from_text(parsed)
        if outcome is None or not outcome.answer.strip():
            lines = [line.strip() for line in problem.splitlines() if line.strip()]
            why = " ".join(dict.fromkeys(lines[:1] + lines[-1:])) or "the answer was empty"
            return Outcome("max_iterations", detail=f"the forced final turn gave no answer: {why}")
        return Outcome("max_iterations", outcome.answer, outcome.fields, "forced final answer")

    # -- cells ----------------------------------------------------------------------------

    def _cell_timeout(self) -> float:
        timeout = self.state.config.cell_timeout_s
        remaining = self.state.budget.remaining_s()
        if remaining is not None:
            timeout = max(min(timeout, remaining), 1.0)
        return timeout

    async def _run_cell(self, cell: Cell, iteration: int, index: int) -> CellResult:
        node = self.node.add("cell", label=f"cell {iteration}.{index + 1}", code=cell.code)
        if cell.instruction:
            node.detail["instruction"] = cell.instruction
        common = self._common(node)
        info = CellInfo(
            **common,
            iteration=iteration,
            cell_index=index,
            code=cell.code,
            instruction=cell.instruction,
            emit=self.state.emit,
        )
        verdict = await self.state.plugins.before_cell(info)
        if isinstance(verdict.decision, Block):
            return await self._blocked(node, info, verdict.decision, verdict.plugin)
        if verdict.code != cell.code:
            node.detail["amended_code"] = verdict.code
        self._cell_node = node
        await self.state.emit(
            CellStarted(
                **common,
                iteration=iteration,
                cell_index=index,
                code=verdict.code,
                instruction=cell.instruction,
            )
        )
        began = time.monotonic()
        try:
            result, clock = await self._cell_outcome(node, info, verdict.code, cell.instruction)
            if result.status in ("timeout", "killed"):
                await self.broker.cancel_calls()  # the REPL no longer waits for them
        except BaseException as exc:
            # The cell's sub-calls close first, then the cell; the exception goes on (a
            # cancellation as a cancellation).
            await self.broker.cancel_calls()
            self._cell_node = self.node
            node.status = "error"
            await self.state.emit(
                CellFinished(
                    **common,
                    iteration=iteration,
                    cell_index=index,
                    status="failed",
                    output="",
                    output_chars=0,
                    duration_s=time.monotonic() - began,
                    error=failure_text(exc),
                )
            )
            raise
        self._cell_node = self.node
        node.status = result.status
        node.latency_s = result.duration_s
        node.detail["output_chars"] = len(result.output)
        await self.state.emit(
            CellFinished(
                **common,
                iteration=iteration,
                cell_index=index,
                status=result.status,
                output=result.output,
                output_chars=len(result.output),
                duration_s=result.duration_s,
                error=result.error,
            )
        )
        await self.state.plugins.after_cell(info, result)
        if result.status == "killed":
            restored = await self._restart(result)
            # Keep why it died (over the memory budget, broke the protocol, CPU): the root
            # needs the reason to do something else.
            why = result.error or ""
            note = _restart_note(restored, len(self._executed))
            result = replace(result, error=f"{why} {note}".strip())
        else:
            if clock is not None:  # a restore replays the precise clocks this run read
                clock = replace(clock, reads=clock.reads or result.clock_reads)
            self._executed.append((node.id, verdict.code, clock))
        return result

    async def _cell_outcome(
        self, node: CallNode, info: CellInfo, code: str, instruction: str | None
    ) -> tuple[CellResult, CellClock | None]:
        """Journal the cell's start, run it, and check it against a recorded run of it."""
        await self._snapshots.read()  # the previous cell's, before this one changes it
        recorded, clock = await journal_cell_start(
            self.state.journal, node, info, code, self.state.run_id
        )
        sandbox = await self._sandbox()
        result = await self._execute(sandbox, code, clock)
        if self.state.journal is not None:
            await self.state.journal.queued_durable()  # the cell ran while it was committed
        start = (info.iteration, info.cell_index, code, instruction, clock.start if clock else 0.0)
        result, fresh = await self._divergences.cell_end(node, result, recorded, start)
        if fresh and result.final is None:  # a FINAL ends the run: nothing to restore later
            self._snapshots.after_cell(sandbox, node.id, result)
        return result, clock

    async def _blocked(
        self, node: CallNode, info: CellInfo, block: Block, plugin: str
    ) -> CellResult:
        """A blocked cell does not run; the root gets the reason as the cell's result."""
        self.state.blocked_cells += 1
        node.status = "blocked"
        node.detail.update(blocked_by=plugin, reason=block.reason, category=block.category)
        await self.state.emit(
            CellBlocked(
                **self._common(node),
                iteration=info.iteration,
                cell_index=info.cell_index,
                reason=block.reason,
                plugin=plugin,
                category=block.category,
                severity=block.severity,
                details=list(block.details),
            )
        )
        text = "\n".join([f"CellBlocked by {plugin}: {block.reason}", *block.details])
        return CellResult(status="error", output="", error=text)

    async def _swap_sandbox(self) -> tuple[Sandbox, Sandbox | None]:
        """A new sandbox becomes the REPL's (to load a snapshot); the previous one is
        returned open, for the caller to close or take back."""
        previous = self.session.sandbox
        return await self._start_sandbox(), previous

    def _adopt(self, sandbox: Sandbox | None) -> None:
        self.session.sandbox = sandbox

    async def _restarted(self, reason: str) -> None:
        await self.state.emit(SandboxRestarted(**self._common(), reason=reason))

    async def _restart(self, result: CellResult) -> bool:
        """A fresh REPL after a hard kill. The cells this loop ran before are replayed into
        it with their sub-calls answered from the journal, so the variables come back
        without new model calls; ``False`` when the replay could not reproduce them."""
        if self.session.sandbox is not None:
            await self.session.sandbox.close()
        sandbox = await self._start_sandbox()
        restored = True
        # The latest snapshot of those cells, when there is one, stands for them all.
        ran = [node_id for node_id, _, _ in self._executed]
        covered = await restore_latest(self.state.journal, sandbox, ran)
        for node_id, code, clock in self._executed[covered:]:
            # A stand-in node with the original id: sub-calls get their original ids back.
            self._cell_node = CallNode(id=node_id, kind="cell")
            replayed = await self._execute(sandbox, code, clock)
            restored = restored and replayed.status in ("ok", "error")
        self._cell_node = self.node
        await self.state.emit(
            SandboxRestarted(**self._common(), reason=result.error or "worker killed")
        )
        return restored

    def _raw_output(self, result: CellResult) -> str:
        parts = [result.output.rstrip("\n")] if result.output.strip() else []
        if result.status == "error" and result.error:
            parts.append(result.error.rstrip("\n"))
        elif result.status == "timeout":
            parts.append(
                f"TimeoutError: the cell ran past its deadline and was interrupted. "
                f"Variables are kept. {result.error or ''}".strip()
            )
        elif result.status == "killed":
            parts.append(
                "SandboxRestarted: the REPL was killed and started again. "
                f"{result.error or ''}".strip()
            )
        if result.dropped_chars:
            parts.append(f"[{result.dropped_chars:,} further characters of output were discarded]")
        return "\n".join(parts) if parts else "(no output)"

    async def _shape_output(
        self, result: CellResult, cell: Cell, iteration: int, index: int
    ) -> str:
        text = self._raw_output(result)
        cfg = self.state.config
        if len(text) <= cfg.max_output_chars:
            return text
        if cfg.output_mode == "truncate":
            return truncate_middle(text, cfg.max_output_chars)
        node = self.node.add("digest", label=f"digest of cell {iteration}.{index + 1}")
        common = self._common(node)
        size = len(text)
        await self.state.emit(
            DigestStarted(**common, iteration=iteration, cell_index=index, output_chars=size)
        )
        try:
            digest = await digest_output(
                self.state, text, cell.instruction, self.question, node=node, depth=self.depth
            )
        except BaseException as exc:
            await self.state.emit(
                DigestFinished(
                    **common,
                    iteration=iteration,
                    cell_index=index,
                    output_chars=size,
                    digest_chars=0,
                    status="failed",
                    error=failure_text(exc),
                )
            )
            raise
        await self.state.emit(
            DigestFinished(
                **common,
                iteration=iteration,
                cell_index=index,
                output_chars=size,
                digest_chars=len(digest),
            )
        )
        return digest
