"""Building, journaling and recording a run from the CLI: shared by ``ask``, ``runs resume``,
``replay`` and sessions.

A run's settings are stored with it (JSON), so a resume rebuilds the same RLM: same
models (request hashes include the model), same limits, same contexts.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import getpass
import tempfile
import uuid
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from pathlib import Path
from typing import Any

from rlm_engine.cli.inputs import context_value, read_options
from rlm_engine.cli.interrupts import Interrupts
from rlm_engine.cli.provider_env import provider_env
from rlm_engine.cli.run_records import SETTINGS_VERSION, engine_version, failure_kind
from rlm_engine.engine.journal import Journal
from rlm_engine.engine.result import RunResult
from rlm_engine.engine.rlm import RLM
from rlm_engine.errors import ContextError, ErrorCause, RLMError, RunInterrupted
from rlm_engine.events import Event
from rlm_engine.lm.spec import canonical_model
from rlm_engine.otel_setup import tracing_from_env
from rlm_engine.plugins.base import CellDecision, CellInfo, Plugin
from rlm_engine.plugins.chain import load_entry_point_plugins
from rlm_engine.plugins.defaults import default_plugins
from rlm_engine.sandbox.base import ContextValue
from rlm_engine.settings import Settings
from rlm_engine.store.errors import StoreError
from rlm_engine.store.memory_mapping import StoreMemory
from rlm_engine.store.pinned_context import BackgroundPin, pinned_entries, restore_context
from rlm_engine.store.protocol import Store
from rlm_engine.store.records import JournalWrites, MemoryScope, NewRun, Run, RunTotals
from rlm_engine.store.response_cache import StoreResponseCache
from rlm_engine.store.run_rules import PERMANENT_FAILURES
from rlm_engine.store.write_errors import StoreWriteError
from rlm_engine.types import Completion, Message, ModelSettings

HEARTBEAT_S = 30.0
# RLMConfig fields a run's settings may carry (everything else is rejected on rebuild).
CONFIG_KEYS = (
    "max_iterations",
    "max_depth",
    "max_children",
    "max_concurrency",
    "max_sub_calls",
    "max_prompt_bytes",
    "sub_context_tokens",
    "max_answer_bytes",
    "max_cost_usd",
    "max_seconds",
    "cell_timeout_s",
    "memory_mb",
    "output_mode",
    "response_cache",
    "max_tokens",
    "max_output_chars",
)


def new_run_id() -> str:
    return uuid.uuid4().hex[:16]


def context_paths(raw: Sequence[str]) -> list[str]:
    """Absolute paths of the given contexts; a missing one is a clear error."""
    paths: list[str] = []
    for item in raw:
        path = Path(item).expanduser()
        if not path.exists():
            raise ContextError(f"context path {item!r} does not exist")
        paths.append(str(path.resolve()))
    return paths


def context_of(run_settings: Mapping[str, Any]) -> ContextValue:
    """The context as given to ``rlm ask`` (the paths it names, as they are now), read
    as its settings say (``encoding``, ``binary``)."""
    paths = [Path(p) for p in run_settings.get("context", [])]
    for path in paths:
        if not path.exists():
            raise ContextError(f"the run's context {str(path)!r} is gone; restore it to go on")
    return _as_value(paths, run_settings)


def _as_value(paths: Sequence[Path], run_settings: Mapping[str, Any]) -> ContextValue:
    return context_value(paths, read_options(run_settings))


@contextlib.contextmanager
def context_scratch() -> Generator[Path]:
    """Where one command rebuilds pinned contexts; removed when it ends."""
    with tempfile.TemporaryDirectory(prefix="rlm-context-") as name:
        yield Path(name)


def run_context(store: Store, run: Run, scratch: Path) -> ContextValue:
    """A recorded run's context as it was: pinned copies where the files changed since
    (rebuilt under ``scratch``); runs recorded before contexts were pinned use the paths."""
    if run.context_hash is None:
        return context_of(run.settings)
    if pinned_entries(store, run.context_hash) is None:
        raise ContextError(
            f"run {run.run_id} stopped before its context was kept in the store, so the "
            "bytes it saw cannot be restored exactly; ask the question again"
        )
    return _as_value(restore_context(store, run.context_hash, scratch), run.settings)


def plugins_for(run_settings: Mapping[str, Any], settings: Settings) -> list[Plugin]:
    """Defaults (unless turned off), named entry-point plugins, and tracing when an OTLP
    endpoint is configured."""
    plugins: list[Plugin] = [] if run_settings.get("no_default_plugins") else default_plugins()
    names: list[str] = list(run_settings.get("plugins", []))
    if names:  # looking the entry points up reads every installed package's metadata
        plugins += load_entry_point_plugins(names)
    tracing = tracing_from_env(settings.env)
    if tracing is not None:
        plugins.append(tracing)
    return plugins


class OfflineModel:
    """Stands in for a model during an offline replay: it is never supposed to be called."""

    def __init__(self, name: str) -> None:
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    @property
    def provider(self) -> str:
        return self._name.split("/", 1)[0]

    async def complete(
        self, messages: Sequence[Message], settings: ModelSettings | None = None
    ) -> Completion:
        from rlm_engine.engine.journal_store import ReplayExhausted

        raise ReplayExhausted(
            f"the journal holds no reply for a call to {self._name}; an offline replay makes "
            "no model calls (use `rlm runs resume` to continue with live models)"
        )


def build_rlm(
    run_settings: Mapping[str, Any],
    settings: Settings,
    *,
    on_event: Callable[[Event], Awaitable[None] | None],
    memory: Any = None,
    persistent: bool = False,
    offline: bool = False,
    store: Store | None = None,
) -> RLM:
    """The RLM a run's stored settings describe; with a ``store``, cached sub-call
    replies are kept in it and shared between runs."""
    model = run_settings["model"]
    sub_model = run_settings.get("sub_model") or model
    config: dict[str, Any] = {
        k: run_settings[k] for k in CONFIG_KEYS if run_settings.get(k) is not None
    }
    config["root_settings"] = ModelSettings(
        temperature=run_settings.get("temperature"),
        max_output_tokens=run_settings.get("max_output_tokens"),
    )
    config["sub_settings"] = ModelSettings(
        temperature=run_settings.get("sub_temperature"),
        max_output_tokens=run_settings.get("sub_max_output_tokens"),
    )
    env = settings.env
    if not offline:  # an offline replay calls no model, so it needs no key
        env = provider_env(
            env, model, run_settings.get("base_url"), run_settings.get("api_key_env")
        )
    request_timeout = run_settings.get("request_timeout_s")
    if request_timeout is not None:  # stored with the run, so a resume waits as long
        env = {**env, "RLM_REQUEST_TIMEOUT": str(request_timeout)}
    fallbacks: list[str] = list(run_settings.get("fallback_models", []))
    if offline:
        model, sub_model = (
            OfflineModel(canonical_model(model)),
            OfflineModel(canonical_model(sub_model)),
        )
        fallbacks = []
    return RLM(
        model,
        sub_model,
        env=env,
        fallback_models=fallbacks,
        plugins=plugins_for(run_settings, settings),
        instructions=run_settings.get("instructions", ""),
        isolation=run_settings.get("isolation", "auto"),
        memory=memory,
        persistent=persistent,
        on_event=on_event,
        response_store=None if store is None or offline else StoreResponseCache(store),
        **config,
    )


def memory_for(store: Store, session: str | None) -> StoreMemory:
    scope = MemoryScope.session(session) if session else MemoryScope.user(getpass.getuser())
    return StoreMemory(store, scope)


class StoreEventSink:
    """Appends events of the given runs to the store in batches, off the event loop,
    through the store's group-commit writer.

    The journal is what makes a run resumable and is written before each step; events are
    the audit trail and tolerate losing the last fraction of a second in a crash, so they
    are gathered for up to ``FLUSH_EVERY_S`` and committed together (a commit per event
    burst would cost a run's root turns as much as their own journal commits)."""

    FLUSH_EVERY_S = 0.1

    def __init__(self, store: Store) -> None:
        self.store = store
        self.run_ids: set[str] = set()
        self._buffer: list[Event] = []
        self._task: asyncio.Task[None] | None = None
        self._now = asyncio.Event()  # set while draining: flush without waiting
        self.error: StoreError | None = None
        """The first failed write; `drain` raises it, so the run fails rather than end
        without its audit trail."""
        self.lost = 0
        """Events that could not be recorded."""

    def __call__(self, event: Event) -> None:
        if event.run_id not in self.run_ids:
            return
        self._buffer.append(event)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        while self._buffer:
            if not self._now.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.FLUSH_EVERY_S):
                        await self._now.wait()
            batch, self._buffer = self._buffer, []
            try:
                await self.store.journal_writer.write(JournalWrites(events=batch))
            except Exception as exc:
                self._failed(exc, len(batch))

    def _failed(self, exc: Exception, count: int) -> None:
        self.lost += count
        if self.error is not None:
            return
        if isinstance(exc, StoreError):
            self.error = exc
        else:
            self.error = StoreWriteError(f"the store could not record events: {exc}")
            self.error.__cause__ = exc

    async def drain(self) -> None:
        """Commit every event received so far, now. Raises `StoreError` (naming how many
        events were lost) if any event could not be recorded."""
        self._now.set()
        try:
            if self._task is not None:
                await self._task
            await self._flush()
        finally:
            self._now.clear()
        if self.error is not None:
            raise StoreWriteError(
                f"{self.lost} event(s) of the audit trail could not be recorded: {self.error}"
            ) from self.error


def listeners(
    run_id: str, sink: StoreEventSink, progress: Callable[[Event], None]
) -> Callable[[Event], None]:
    """Every event to the store; only ``run_id``'s to the screen (a session's restore
    replays earlier runs under their own ids)."""

    def on_event(event: Event) -> None:
        sink(event)
        if event.run_id == run_id:
            progress(event)

    return on_event


def open_run(
    store: Store,
    run_id: str,
    question: str,
    run_settings: Mapping[str, Any],
    session: str | None,
) -> BackgroundPin | None:
    """Record a new run at once, and start pinning its context in the store (so resume
    never depends on the files staying as they are) in the background.

    The run refers to its context by the pin's key from the start; pass the pin to
    `run_and_record`, whose cells wait for the copy and which fails the run if a file
    changed before it was copied. None when the run has no context."""
    paths = run_settings.get("context", [])
    pin = BackgroundPin(store, run_id, paths) if paths else None
    store.create_run(
        NewRun(
            run_id=run_id,
            question=question,
            model=run_settings["model"],
            sub_model=run_settings.get("sub_model") or run_settings["model"],
            settings=dict(run_settings),
            session=session,
            context_hash=None if pin is None else pin.key,
            engine_version=engine_version(),
            settings_version=SETTINGS_VERSION,
        )
    )
    return None if pin is None else pin.start()


def record_failure(
    store: Store, run_id: str, detail: str, cause: ErrorCause | None, resuming: Run | None
) -> None:
    """Record that a run failed; a failed resume attempt (``resuming`` is the run before it
    was claimed) leaves the run as it was, with ``detail`` as its last error, unless the
    failure is one a later resume would meet again."""
    kind = failure_kind(cause)
    if resuming is not None and kind not in PERMANENT_FAILURES:
        if kind == "divergence" and resuming.engine_version != engine_version():
            recorded = resuming.engine_version or "a version that was not recorded"
            detail += f" (recorded by rlm-engine {recorded}, resumed with {engine_version()})"
        store.abandon_attempt(run_id, previous=resuming, error=detail)
        return
    store.finish_run(run_id, status="failed", stop_reason="error", detail=detail, failure_kind=kind)


def close_run(store: Store, result: RunResult, resuming: Run | None = None) -> None:
    if result.stop_reason == "error":
        record_failure(store, result.run_id, result.stop_detail, result.cause, resuming)
        return
    store.finish_run(
        result.run_id,
        status="completed",
        stop_reason=result.stop_reason,
        answer=result.answer,
        detail=result.stop_detail,
        totals=RunTotals(
            input_tokens=result.usage.input_tokens,
            output_tokens=result.usage.output_tokens,
            cached_tokens=result.usage.cached_tokens,
            cost_usd=result.cost_usd,
            sub_calls=result.sub_calls,
            iterations=result.iterations,
        ),
    )


async def _heartbeat(store: Store, run_id: str) -> None:
    while True:
        await asyncio.sleep(HEARTBEAT_S)
        await asyncio.to_thread(store.heartbeat, run_id)


class ContextPinGate(Plugin):
    """Holds the cells of a run until its context is pinned: the model calls before the
    first cell need only the context's shape, so they go ahead while the files are copied.
    A pin that failed stops the run (the plugin is required)."""

    name = "context-pin"
    required = True

    def __init__(self, pin: BackgroundPin) -> None:
        self.pin = pin

    async def before_cell(self, cell: CellInfo) -> CellDecision | None:
        if cell.run_id == self.pin.run_id:
            await self.pin.wait()
        return None


async def journaled_run(
    rlm: RLM,
    store: Store,
    sink: StoreEventSink,
    *,
    run_id: str,
    question: str,
    context: ContextValue,
    journal: Journal,
    pin: BackgroundPin | None = None,
) -> RunResult:
    """One run with every step journaled and every event recorded; with the `pin` of its
    context, cells wait for it and the run ends only once the context is kept."""
    sink.run_ids.add(run_id)
    beat = asyncio.create_task(_heartbeat(store, run_id))
    gate = None if pin is None else ContextPinGate(pin)
    if gate is not None:
        rlm.plugins.insert(0, gate)
    try:
        result = await rlm.arun(question, context, run_id=run_id, journal=journal)
        if pin is not None:
            await pin.wait()  # raises what failed it, e.g. a file changed before its copy
    finally:
        if gate is not None:
            rlm.plugins.remove(gate)
        beat.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await beat  # a heartbeat the store refused: the run's own writes say why
    try:
        await sink.drain()
    except StoreError as exc:
        return stopped_by(result, exc)
    return result


def stopped_by(result: RunResult, exc: RLMError, *, note: str = "") -> RunResult:
    """``result`` as an ``error`` stop caused by ``exc`` (an earlier error stop keeps its
    own cause; ``note`` is added to its detail)."""
    if result.stop_reason == "error":
        detail = f"{result.stop_detail}; {note}" if note else result.stop_detail
        return dataclasses.replace(result, stop_detail=detail)
    detail = f"{type(exc).__name__}: {exc}" + (f"; {note}" if note else "")
    return dataclasses.replace(
        result, stop_reason="error", stop_detail=detail, cause=ErrorCause.of(exc)
    )


def run_and_record(
    rlm: RLM,
    store: Store,
    sink: StoreEventSink,
    progress: contextlib.AbstractContextManager[Any],
    *,
    run_id: str,
    question: str,
    context: ContextValue,
    journal: Journal,
    before: Callable[[], Awaitable[None]] | None = None,
    pin: BackgroundPin | None = None,
    resuming: Run | None = None,
) -> RunResult:
    """Drive one journaled run to its end and record its outcome; a run that fails with an
    error is recorded as failed with the reason (and its kind) before the error propagates.
    ``pin`` is what `open_run` returned: the run is recorded once its context is kept.
    ``resuming``: the run as it was before `Store.claim_run`, which a failed attempt puts
    back (`record_failure`). Ctrl-C or SIGTERM stops the run, records it as interrupted
    and raises `RunInterrupted`."""
    interrupts = Interrupts(run_id)

    async def go() -> RunResult:
        try:
            if before is not None:
                await before()
            return await journaled_run(
                rlm,
                store,
                sink,
                run_id=run_id,
                question=question,
                context=context,
                journal=journal,
                pin=pin,
            )
        except asyncio.CancelledError:
            # The engine has stopped; the last root reply and cell outcome it held back
            # become durable, so a resume need not redo them.
            with contextlib.suppress(Exception):
                await journal.flush()
            raise
        finally:
            if pin is not None:
                pin.stop()  # abandons a pin still going when the run ended early
            await rlm.aclose()

    try:
        with progress:
            result = asyncio.run(interrupts.guard(go()))
        return _closed(store, result, resuming)
    except (asyncio.CancelledError, KeyboardInterrupt) as exc:
        if isinstance(exc, asyncio.CancelledError) and interrupts.signal_name is None:
            raise
        interrupts.noticed()  # a Ctrl-C before our handlers were in place
        detail = interrupts.detail()
        store.finish_run(run_id, status="interrupted", stop_reason="interrupted", detail=detail)
        raise RunInterrupted(run_id, interrupts.signal_name or "SIGINT") from None
    except RLMError as exc:
        exc.run_id = run_id  # pyright: ignore[reportAttributeAccessIssue]
        try:
            record_failure(
                store, run_id, f"{type(exc).__name__}: {exc}", ErrorCause.of(exc), resuming
            )
        except StoreError as unrecorded:
            unrecorded.run_id = run_id  # pyright: ignore[reportAttributeAccessIssue]
            raise unrecorded from exc
        raise


def _closed(store: Store, result: RunResult, resuming: Run | None) -> RunResult:
    """Record the run's outcome; if the store cannot (its disk is full), the run ends as a
    ``store`` failure with the outcome it reached kept in its journal: `rlm runs resume`
    records it once the store can write again."""
    try:
        close_run(store, result, resuming)
    except StoreError as exc:
        note = f"the outcome could not be recorded ({exc})"
        stopped = stopped_by(result, exc, note=note)
        with contextlib.suppress(StoreError):  # the failure itself may fit where more did not
            record_failure(store, result.run_id, stopped.stop_detail, stopped.cause, resuming)
        return stopped
    return result
