"""The MCP server over the run service, with the official ``mcp`` SDK (``MCPServer``).

Tools: ``rlm_ask`` (a question over paths, a text or a session; progress notifications
while the run goes; the answer, run id and cost at the end), ``rlm_runs`` (list or show)
and ``rlm_resume``. Resources: ``rlm://runs/{run_id}/tree`` (the call tree as JSON) and
``rlm://runs/{run_id}/notebook`` (the run as a Jupyter notebook).

Who calls is asked of ``principal_of`` on every request: the local tenant over stdio,
the API key's tenant over HTTP. A typed error becomes a tool error whose text says what
went wrong and what to do.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from pydantic import Field

from rlm_engine import __version__
from rlm_engine.errors import RLMError, hint_for
from rlm_engine.mcp.roots import root_of_uri
from rlm_engine.mcp.runs import AskArgs, McpRuns, RunListOut, RunResultOut
from rlm_engine.service.principal import Principal

PrincipalOf = Callable[[Context], Principal]
RunStatusName = Literal["queued", "running", "completed", "failed", "interrupted", "cancelled"]

INSTRUCTIONS = """\
Recursive Language Model runs: `rlm_ask` answers a question over files, a directory or a
text too large for a prompt, by having a model write code over it and call sub-models.
Runs are durable: `rlm_runs` lists and shows them, `rlm_resume` continues an interrupted
one; `rlm://runs/{run_id}/tree` and `rlm://runs/{run_id}/notebook` show how it answered."""


def described(exc: RLMError) -> str:
    hint = hint_for(exc)
    return f"{exc} (hint: {hint})" if hint else str(exc)


async def client_roots(ctx: Context) -> list[Path] | None:
    """The client's ``file://`` roots, when it offers them and the connection can ask."""
    capabilities = ctx.client_capabilities
    if capabilities is None or capabilities.roots is None:
        return None
    try:
        with warnings.catch_warnings():
            # Deprecated by the newest protocol revision, still what clients offer.
            warnings.simplefilter("ignore")
            listed = await ctx.session.list_roots()  # pyright: ignore[reportDeprecated]
    except Exception:
        # A connection without a back-channel cannot ask: the operator's roots apply.
        return None
    found = [root_of_uri(str(r.uri)) for r in listed.roots]
    return [p for p in found if p is not None] or None


def _reporter(ctx: Context) -> Callable[[str], Any]:
    sent = 0

    async def report(message: str) -> None:
        nonlocal sent
        sent += 1
        await ctx.report_progress(sent, None, message)

    return report


def build_server(runs_of: Callable[[], McpRuns], principal_of: PrincipalOf) -> MCPServer:
    """The server; ``runs_of()`` gives the service calls (looked up per call: a server
    opens its services after the app is built)."""
    server: MCPServer = MCPServer(
        "rlm-engine", instructions=INSTRUCTIONS, version=__version__, log_level="WARNING"
    )

    @server.tool(
        description="Answer a question with an RLM over files or directories (paths, under "
        "the allowed roots), a text, or a session; reports progress while the run goes and "
        "returns the answer, the run id and the cost."
    )
    async def rlm_ask(
        question: Annotated[str, Field(min_length=1, description="what to answer")],
        ctx: Context,
        paths: Annotated[
            list[str] | None, Field(description="files or directories to read")
        ] = None,
        text: Annotated[str | None, Field(description="the context itself, as text")] = None,
        session_id: Annotated[str | None, Field(description="ask over a session")] = None,
        model: Annotated[str | None, Field(description="root model, provider/name")] = None,
        sub_model: Annotated[str | None, Field(description="model of sub-calls")] = None,
        max_iterations: Annotated[int | None, Field(ge=1, le=1000)] = None,
        max_depth: Annotated[int | None, Field(ge=0, le=32)] = None,
        max_seconds: Annotated[float | None, Field(gt=0)] = None,
        budget_usd: Annotated[float | None, Field(gt=0)] = None,
    ) -> RunResultOut:
        args = AskArgs(
            question=question,
            paths=tuple(paths or ()),
            text=text,
            session_id=session_id,
            model=model,
            sub_model=sub_model,
            max_iterations=max_iterations,
            max_depth=max_depth,
            max_seconds=max_seconds,
            budget_usd=budget_usd,
        )
        try:
            roots = await client_roots(ctx) if args.paths else None
            return await runs_of().ask(principal_of(ctx), args, roots, _reporter(ctx))
        except RLMError as exc:
            raise ToolError(described(exc)) from exc

    @server.tool(description="List recent runs, or show one run (run_id).")
    async def rlm_runs(
        ctx: Context,
        run_id: str | None = None,
        status: RunStatusName | None = None,
        limit: Annotated[int, Field(ge=1, le=200)] = 20,
    ) -> RunListOut:
        who = principal_of(ctx)
        try:
            if run_id is not None:
                return RunListOut(runs=[await runs_of().show(who, run_id)])
            return await runs_of().list(who, status=status, limit=limit)
        except RLMError as exc:
            raise ToolError(described(exc)) from exc

    @server.tool(
        description="Resume an interrupted, failed or cancelled run from its journal "
        "(no recorded model call is made again); reports progress and returns the answer."
    )
    async def rlm_resume(
        run_id: str, ctx: Context, accept_divergence: bool = False
    ) -> RunResultOut:
        try:
            return await runs_of().resume(
                principal_of(ctx), run_id, _reporter(ctx), accept_divergence=accept_divergence
            )
        except RLMError as exc:
            raise ToolError(described(exc)) from exc

    @server.resource(
        "rlm://runs/{run_id}/tree",
        name="run tree",
        description="A run's call tree: nodes with model, tokens and cost; REPL cells",
        mime_type="application/json",
    )
    async def run_tree(run_id: str, ctx: Context) -> str:
        try:
            return await runs_of().tree_json(principal_of(ctx), run_id)
        except RLMError as exc:
            raise ResourceError(described(exc)) from exc

    @server.resource(
        "rlm://runs/{run_id}/notebook",
        name="run notebook",
        description="A run as a Jupyter notebook: each turn's code and output",
        mime_type="application/x-ipynb+json",
    )
    async def run_notebook(run_id: str, ctx: Context) -> str:
        try:
            return await runs_of().notebook(principal_of(ctx), run_id)
        except RLMError as exc:
            raise ResourceError(described(exc)) from exc

    return server
