"""The public entry point: ``RLM``."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Mapping, MutableMapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel

from rlm_engine.engine.budgets import Budget, Limits
from rlm_engine.engine.config import RLMConfig
from rlm_engine.engine.journal import Journal, MemoryJournal
from rlm_engine.engine.loop import Outcome, RunLoop, Session
from rlm_engine.engine.restore import PastRun, Restorer, RestoreReport
from rlm_engine.engine.result import RunResult
from rlm_engine.engine.state import EventListener, SandboxFactory, Tool, TreeState
from rlm_engine.engine.tree import CallNode
from rlm_engine.errors import (
    BudgetExceeded,
    ConfigurationError,
    ErrorCause,
    RLMError,
    SandboxError,
)
from rlm_engine.events import ErrorEvent, Event, RunFinished, RunStarted
from rlm_engine.lm.base import LanguageModel
from rlm_engine.lm.cache import CachedModel, PersistentCache, ResponseCache
from rlm_engine.lm.circuit import BreakerBoard
from rlm_engine.lm.retry import RUN_RETRY_BUDGET, RetryBudget
from rlm_engine.lm.routing import FallbackModel
from rlm_engine.plugins.base import Plugin, RunInfo
from rlm_engine.plugins.chain import PluginChain
from rlm_engine.plugins.defaults import default_plugins
from rlm_engine.plugins.instructions import InstructionsPlugin
from rlm_engine.sandbox.base import ContextValue

ModelSpec = str | LanguageModel


def _tool_table(tools: Mapping[str, Tool] | Sequence[Tool]) -> dict[str, Tool]:
    if isinstance(tools, Mapping):
        return dict(tools)
    table: dict[str, Tool] = {}
    for tool in tools:
        name = getattr(tool, "__name__", None)
        if not name or not name.isidentifier():
            raise ConfigurationError(f"tool {tool!r} has no usable __name__; pass a dict of tools")
        table[name] = tool
    return table


ROLES = ("root", "sub", "digest")


def _fallbacks_by_role(
    fallbacks: Sequence[ModelSpec] | Mapping[str, Sequence[ModelSpec]],
) -> dict[str, Sequence[ModelSpec]]:
    """One list for every role, or a mapping from role to its own list."""
    if isinstance(fallbacks, str):
        fallbacks = [fallbacks]
    if isinstance(fallbacks, Mapping):
        unknown = set(fallbacks) - set(ROLES)
        if unknown:
            raise ConfigurationError(
                f"fallback roles must be among {', '.join(ROLES)}; got {sorted(unknown)}"
            )
        return {role: list(fallbacks.get(role, ())) for role in ROLES}
    return {role: list(fallbacks) for role in ROLES}


def _escaped(exc: BaseException) -> Outcome:
    """How a run that raises ends: cancelled, or an error the run could not turn into a
    stop of its own (a bug, or an exception that is not this package's)."""
    if isinstance(exc, asyncio.CancelledError):
        return Outcome("cancelled", detail="the run was cancelled")
    return Outcome("error", detail=f"{type(exc).__name__}: {exc}", cause=ErrorCause.of(exc))


class RLM:
    """A Recursive Language Model.

    The root model sees only the context's shape; it writes Python that runs in a
    persistent REPL holding the context and calls sub-models from there.

    >>> rlm = RLM("openai/gpt-5-mini", sub_model="openai/gpt-5-nano")  # doctest: +SKIP
    >>> rlm.run("Which disk failed?", context=Path("app.log")).answer  # doctest: +SKIP

    Models are ``provider/model`` strings (resolved with retries and pricing) or any
    ``LanguageModel``. ``env`` is the environment to read provider settings from
    (``os.environ`` when omitted). Use ``run`` from synchronous code, ``arun`` or
    ``stream`` from async code. With ``persistent=True`` the REPL and history are kept
    between questions; call ``close()`` (or use ``with``) when done. ``isolation``:
    ``auto`` uses the best OS isolation available (warning loudly when there is none),
    ``strict`` refuses to run without it, ``none`` opts out. ``response_store`` keeps
    cached sub-call replies beyond this process (``StoreResponseCache(store)``).
    """

    def __init__(
        self,
        model: ModelSpec,
        sub_model: ModelSpec | None = None,
        *,
        digest_model: ModelSpec | None = None,
        fallback_models: Sequence[ModelSpec] | Mapping[str, Sequence[ModelSpec]] = (),
        plugins: Sequence[Plugin] | None = None,
        instructions: str = "",
        config: RLMConfig | None = None,
        tools: Mapping[str, Tool] | Sequence[Tool] = (),
        output_schema: type[BaseModel] | None = None,
        persistent: bool = False,
        isolation: Literal["auto", "strict", "none"] = "auto",
        memory: MutableMapping[str, Any] | None = None,
        sandbox_factory: SandboxFactory | None = None,
        env: Mapping[str, str] | None = None,
        on_event: EventListener | None = None,
        response_store: PersistentCache | None = None,
        **settings: Any,
    ) -> None:
        try:
            self.config = config or RLMConfig(**settings)
        except TypeError as exc:
            raise ConfigurationError(f"unknown RLM setting: {exc}") from exc
        if config is not None and settings:
            raise ConfigurationError(
                "pass either config=RLMConfig(...) or keyword settings, not both"
            )
        self._env = env
        self._models: dict[str, LanguageModel] = {}
        self._breakers = BreakerBoard()
        fallbacks = _fallbacks_by_role(fallback_models)
        self.model = self._role_model(model, fallbacks["root"])
        sub = self._role_model(sub_model or model, fallbacks["sub"])
        self.digest_model = self._role_model(
            digest_model or sub_model or model, fallbacks["digest"]
        )
        self.response_cache = ResponseCache(persistent=response_store)
        self.sub_model: LanguageModel = CachedModel(
            sub, self.response_cache, self.config.response_cache
        )
        self.plugins: list[Plugin] = list(default_plugins() if plugins is None else plugins)
        if instructions.strip():
            self.plugins.append(InstructionsPlugin(instructions))
        self.tools = _tool_table(tools)
        self.output_schema = output_schema
        self.persistent = persistent
        self.memory: MutableMapping[str, Any] = {} if memory is None else memory
        if sandbox_factory is None:
            from rlm_engine.sandbox.factory import sandbox_factory as local_factory
            from rlm_engine.sandbox.limits import Limits

            # "strict" raises IsolationUnavailable here, before any model is called.
            limits = Limits(memory_mb=self.config.memory_mb)
            sandbox_factory = local_factory(isolation=isolation, limits=limits)
        self._sandbox_factory = sandbox_factory
        self._listeners: list[EventListener] = [on_event] if on_event is not None else []
        self._session: Session | None = None
        self._runner: asyncio.Runner | None = None

    # -- models ---------------------------------------------------------------------------

    def _role_model(self, spec: ModelSpec, fallbacks: Sequence[ModelSpec]) -> LanguageModel:
        primary = self._resolve(spec)
        others = [self._resolve(f) for f in fallbacks if f is not spec and f != spec]
        return FallbackModel([primary, *others]) if others else primary

    def _resolve(self, spec: ModelSpec) -> LanguageModel:
        if not isinstance(spec, str):
            return spec
        cached = self._models.get(spec)
        if cached is None:
            from rlm_engine.lm.registry import build_model
            from rlm_engine.settings import Settings

            env = self._env if self._env is not None else Settings.from_env().env
            cached = build_model(spec, env=env, breakers=self._breakers)
            self._models[spec] = cached
        return cached

    # -- running --------------------------------------------------------------------------

    def run(self, question: str, context: ContextValue = None) -> RunResult:
        """Answer ``question`` synchronously. Not callable from a running event loop."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RLMError("RLM.run() was called inside an event loop; use `await rlm.arun(...)`")
        if self._runner is None:
            self._runner = asyncio.Runner()
        return self._runner.run(self.arun(question, context))

    async def arun(
        self,
        question: str,
        context: ContextValue = None,
        *,
        run_id: str | None = None,
        journal: Journal | None = None,
    ) -> RunResult:
        """Answer ``question``; every event goes to the listeners given at construction.

        With a ``journal`` every step is recorded durably before the next; passing the
        journal of an earlier, interrupted run with its ``run_id`` resumes it: journaled
        model calls are answered from the journal and journaled cells re-run and are checked
        against their recorded output (``NondeterminismError`` if they differ).
        """
        stream = RunStream(self, question, context, run_id=run_id, journal=journal)
        async for _ in stream:
            pass
        assert stream.result is not None
        return stream.result

    def stream(self, question: str, context: ContextValue = None) -> RunStream:
        """Answer ``question`` as an async iterator of typed events; ``.result`` afterwards."""
        return RunStream(self, question, context)

    async def arestore(self, runs: Sequence[PastRun]) -> RestoreReport:
        """Rebuild a persistent RLM's REPL from the cells of earlier runs, before its first
        question: no model is called (sub-calls get their recorded replies) and the next
        question may use other models, instructions and budgets (see ``engine.restore``)."""
        if not runs:
            return RestoreReport()
        if not self.persistent:
            raise ConfigurationError("restoring a session needs RLM(..., persistent=True)")
        restorer = Restorer(
            self._session_for(None),
            self._sandbox_factory,
            memory=self.memory,
            tools=self.tools,
            plugins=self.plugins,
            cell_timeout_s=self.config.cell_timeout_s,
        )
        return await restorer.restore(runs)

    async def _execute(
        self,
        question: str,
        context: ContextValue,
        listeners: list[EventListener],
        run_id: str | None = None,
        journal: Journal | None = None,
    ) -> RunResult:
        if not question.strip():
            raise ConfigurationError("the question is empty")
        run_id = run_id or uuid.uuid4().hex[:16]
        cfg = self.config
        state = TreeState(
            run_id=run_id,
            config=cfg,
            root_model=self.model,
            sub_model=self.sub_model,
            resolve_model=self._resolve,
            sandbox_factory=self._sandbox_factory,
            budget=Budget(
                Limits(cfg.max_sub_calls, cfg.max_tokens, cfg.max_cost_usd, cfg.max_seconds)
            ),
            listeners=[*self._listeners, *listeners],
            tools=self.tools,
            memory=self.memory,
            output_schema=self.output_schema,
            digest_model=self.digest_model,
            # Without a durable journal, one in memory still lets a REPL that was killed
            # get its variables back by replay, with no new model calls.
            journal=journal if journal is not None else MemoryJournal(),
        )
        state.plugins = PluginChain(self.plugins, state.emit)
        session = self._session_for(context)
        root = CallNode(id="r", kind="run", label=question[:80], model=self.model.name)
        loop = RunLoop(state, question=question, session=session, node=root, depth=0)
        started = time.monotonic()
        RUN_RETRY_BUDGET.set(RetryBudget(cfg.retry_budget_s))
        await state.emit(
            RunStarted(
                run_id=run_id,
                question=question,
                model=self.model.name,
                sub_model=self.sub_model.name,
            )
        )
        run_info = RunInfo(
            run_id=run_id,
            question=question,
            model=self.model.name,
            sub_model=self.sub_model.name,
            emit=state.emit,
        )
        failure: BaseException | None = None
        try:
            await state.plugins.before_run(run_info)
            outcome = await self._journal_flushed(
                state, await self._guarded(loop, state, context, session)
            )
        except BaseException as exc:
            failure = exc
            if self.persistent and isinstance(exc, asyncio.CancelledError):
                # A cancelled run leaves a cell half done and its sub-calls in flight on
                # clients about to close: the REPL goes with it (the next run starts anew).
                await loop.close()
                self._session = None
            raise
        finally:
            if not self.persistent:
                await loop.close()
            await self._close_models()
            if failure is not None:
                # Its run_started is closed however the run ends, after the REPL (and so
                # every call still in flight) is gone; the exception then goes on.
                await self._finish(state, loop, root, _escaped(failure), time.monotonic() - started)
        result = await self._finish(state, loop, root, outcome, time.monotonic() - started)
        await state.plugins.after_run(run_info, result)
        return result

    def _session_for(self, context: ContextValue) -> Session:
        if not self.persistent:
            return Session(context=context)
        if self._session is None:
            self._session = Session(context=context)
        return self._session

    async def _guarded(
        self, loop: RunLoop, state: TreeState, context: ContextValue, session: Session
    ) -> Outcome:
        try:
            async with asyncio.timeout(self.config.max_seconds):
                # A sandbox an earlier question left starting must be up before its
                # context can be replaced.
                await session.settle()
                if self.persistent and context is not None and context is not session.context:
                    session.context = context
                    if session.sandbox is not None and session.sandbox.alive:
                        session.meta = await session.sandbox.load_context(context)
                return await loop.run()
        except TimeoutError:
            return Outcome("timeout", detail=f"run exceeded max_seconds={self.config.max_seconds}")
        except BudgetExceeded as exc:
            return Outcome("budget", detail=f"{exc.budget}: {exc}", cause=ErrorCause.of(exc))
        except (RLMError, SandboxError) as exc:
            await state.emit(ErrorEvent(run_id=state.run_id, message=str(exc), where="run"))
            cause = ErrorCause.of(exc)
            return Outcome("error", detail=f"{type(exc).__name__}: {exc}", cause=cause)

    async def _journal_flushed(self, state: TreeState, outcome: Outcome) -> Outcome:
        """Make the journal's held-back writes (the last root reply and cell outcome)
        durable, whatever stopped the run; a journal that cannot be written is an error."""
        if state.journal is None:
            return outcome
        try:
            await state.journal.flush()
        except RLMError as exc:
            if outcome.stop_reason == "error":
                return outcome
            detail = f"the journal could not be written: {exc}"
            return Outcome("error", detail=detail, cause=ErrorCause.of(exc))
        return outcome

    async def _finish(
        self, state: TreeState, loop: RunLoop, root: CallNode, outcome: Outcome, duration: float
    ) -> RunResult:
        budget = state.budget
        root.status = outcome.stop_reason
        root.usage = budget.usage
        root.cost_usd = budget.cost_usd
        root.latency_s = duration
        await state.emit(
            RunFinished(
                run_id=state.run_id,
                stop_reason=outcome.stop_reason,
                detail=outcome.detail,
                iterations=loop.iterations,
                input_tokens=budget.usage.input_tokens,
                output_tokens=budget.usage.output_tokens,
                cost_usd=budget.cost_usd,
                duration_s=duration,
            )
        )
        return RunResult(
            answer=outcome.answer,
            fields=outcome.fields,
            run_id=state.run_id,
            stop_reason=outcome.stop_reason,
            stop_detail=outcome.detail,
            cause=outcome.cause,
            iterations=loop.iterations,
            usage=budget.usage,
            usage_by_model=dict(budget.usage_by_model),
            cost_usd=budget.cost_usd,
            cost_known_usd=budget.cost_known_usd,
            sub_calls=budget.sub_calls,
            blocked_cells=state.blocked_cells,
            duration_s=duration,
            tree=root,
        )

    # -- lifecycle ------------------------------------------------------------------------

    async def _close_models(self) -> None:
        """Close the HTTP clients the models opened on this event loop: a caller may run
        each question on a fresh loop, and connections cannot outlive theirs."""
        from rlm_engine.lm.lifecycle import aclose_model

        roles = (self.model, self.sub_model, self.digest_model)
        models = {id(m): m for m in (*roles, *self._models.values())}
        for model in models.values():
            await aclose_model(model)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
        self._session = None

    def close(self) -> None:
        if self._runner is not None:
            self._runner.run(self.aclose())
            self._runner.close()
            self._runner = None

    def __enter__(self) -> RLM:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> RLM:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class RunStream:
    """Async iterator over one run's events. ``result`` is set once iteration ends."""

    def __init__(
        self,
        rlm: RLM,
        question: str,
        context: ContextValue,
        *,
        run_id: str | None = None,
        journal: Journal | None = None,
    ) -> None:
        self._rlm = rlm
        self._question = question
        self._context = context
        self._run_id = run_id
        self._journal = journal
        self.result: RunResult | None = None

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        task = asyncio.create_task(
            self._rlm._execute(  # pyright: ignore[reportPrivateUsage]
                self._question, self._context, [queue.put_nowait], self._run_id, self._journal
            )
        )
        task.add_done_callback(lambda _: queue.put_nowait(None))
        try:
            while (event := await queue.get()) is not None:
                yield event
            self.result = task.result()
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
