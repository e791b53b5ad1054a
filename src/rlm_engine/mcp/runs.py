"""What the MCP tools do with the run service: queue a run, follow it with progress,
resume one, and shape runs as the tools return them. No MCP types here."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from rlm_engine.errors import ConfigurationError, RLMError
from rlm_engine.mcp.progress import ProgressNotes
from rlm_engine.mcp.roots import Roots
from rlm_engine.service import Services
from rlm_engine.service.principal import Principal
from rlm_engine.service.spec import IsolationMode, RunSpec
from rlm_engine.store.records import Run

Report = Callable[[str], Awaitable[None]]
"""Sends one progress message to the client."""
TEXT_SESSION = "mcp context"


class AskError(RLMError):
    """The tool's arguments do not describe a run."""


class RunResultOut(BaseModel):
    """A run as the tools return it: its answer, id, cost and usage."""

    run_id: str
    status: str
    answer: str | None
    stop_reason: str | None
    detail: str | None
    cost_usd: float | None
    input_tokens: int
    output_tokens: int
    sub_calls: int
    iterations: int
    model: str
    question: str
    session_id: str | None

    @classmethod
    def of(cls, run: Run) -> RunResultOut:
        t = run.totals
        return cls(
            run_id=run.run_id,
            status=run.status,
            answer=run.answer,
            stop_reason=run.stop_reason,
            detail=run.detail,
            cost_usd=t.cost_usd,
            input_tokens=t.input_tokens,
            output_tokens=t.output_tokens,
            sub_calls=t.sub_calls,
            iterations=t.iterations,
            model=run.model,
            question=run.question,
            session_id=run.session,
        )


class RunListOut(BaseModel):
    runs: list[RunResultOut]


@dataclass(frozen=True, slots=True)
class AskArgs:
    question: str
    paths: Sequence[str] = ()
    text: str | None = None
    session_id: str | None = None
    model: str | None = None
    sub_model: str | None = None
    max_iterations: int | None = None
    max_depth: int | None = None
    max_seconds: float | None = None
    budget_usd: float | None = None


@dataclass(frozen=True, slots=True)
class McpRuns:
    """The tools' calls on one set of services, for one principal per call.

    ``isolation``: how runs are sandboxed ("strict" on a server, as its other runs;
    "auto" for a local ``rlm mcp``, as ``rlm ask``)."""

    services: Services
    roots: Roots
    isolation: IsolationMode = "auto"

    def spec(self, args: AskArgs, paths: Sequence[Path]) -> RunSpec:
        settings = self.services.settings
        model = args.model or settings.model
        if not model:
            raise ConfigurationError(
                "no model to run with", hint="pass model (provider/name), or set RLM_MODEL"
            )
        spec = RunSpec(
            model=model,
            sub_model=args.sub_model or settings.sub_model or model,
            context=tuple(str(p) for p in paths),
            max_iterations=args.max_iterations,
            max_depth=args.max_depth,
            max_seconds=args.max_seconds,
            max_cost_usd=args.budget_usd,
            instructions=settings.instructions,
            plugins=settings.plugins,
        )
        return replace(spec, isolation=self.isolation)

    async def ask(
        self, who: Principal, args: AskArgs, client_roots: Sequence[Path] | None, report: Report
    ) -> RunResultOut:
        """Queue the run, report its progress, return it once it has ended."""
        given = sum(1 for x in (args.paths, args.text, args.session_id) if x)
        if given > 1:
            raise AskError("give paths, text or session_id, not several")
        paths = [self.roots.confine(p, client_roots) for p in args.paths]
        spec = self.spec(args, paths)
        session, key = args.session_id, None
        if args.text is not None:
            info = await asyncio.to_thread(
                self.services.sessions.create_text, who, TEXT_SESSION, args.text
            )
            session, key = info.id, info.context_key
        elif session is not None:
            key = (await asyncio.to_thread(self.services.sessions.get, who, session)).context_key
        run = await self.services.queue.submit(
            who, args.question, spec, session=session, context_key=key
        )
        await report(f"Queued as run {run.run_id}.")
        return await self.follow(who, run.run_id, report)

    async def resume(
        self, who: Principal, run_id: str, report: Report, *, accept_divergence: bool = False
    ) -> RunResultOut:
        before = await asyncio.to_thread(self.services.runs.get_run, who, run_id)
        await self.services.runs.resume(who, run_id, accept_divergence=accept_divergence)
        await report(f"Resuming run {run_id}.")
        return await self.follow(who, run_id, report, after_seq=before.last_event_seq)

    async def follow(
        self, who: Principal, run_id: str, report: Report, *, after_seq: int = -1
    ) -> RunResultOut:
        notes = ProgressNotes()
        async for event in self.services.runs.events(who, run_id, after_seq=after_seq):
            text = notes.note(event)
            if text is not None:
                await report(text.strip())
        run = await asyncio.to_thread(self.services.runs.get_run, who, run_id)
        return RunResultOut.of(run)

    async def show(self, who: Principal, run_id: str) -> RunResultOut:
        return RunResultOut.of(await asyncio.to_thread(self.services.runs.get_run, who, run_id))

    async def list(self, who: Principal, *, status: Any = None, limit: int = 20) -> RunListOut:
        page = await asyncio.to_thread(
            self.services.runs.list_runs, who, status=status, limit=limit
        )
        return RunListOut(runs=[RunResultOut.of(r) for r in page.runs])

    async def tree_json(self, who: Principal, run_id: str) -> str:
        """The run's call tree (the run, its nodes with tokens and cost, its cells)."""
        tree = await asyncio.to_thread(self.services.runs.run_tree, who, run_id)
        return json.dumps(dataclasses.asdict(tree), default=str, ensure_ascii=False)

    async def notebook(self, who: Principal, run_id: str) -> str:
        data = await asyncio.to_thread(self.services.runs.export, who, run_id, "ipynb")
        return data.decode("utf-8")
