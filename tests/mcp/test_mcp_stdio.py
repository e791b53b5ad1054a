"""`rlm mcp` over stdio, driven by the official MCP client SDK: the tools are listed,
`rlm_ask` reports progress and answers over a file, the run is a stored run, and a path
outside the allowed roots is refused."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from mcp.client.stdio import StdioServerParameters
from mcp_support import TOOLS, ProgressLog, error_text, haystack, result_of
from server_support import rlm, server_env

from mcp import Client
from rlm_engine.sim import OraclePolicy, OracleRegistry


async def test_rlm_mcp_over_stdio_answers_with_progress(sim_thread: Any, tmp_path: Path) -> None:
    registry = OracleRegistry()
    hay = haystack(tmp_path, registry)
    sim = sim_thread(None, OraclePolicy(registry))
    env = server_env(tmp_path / "home", sim.url)
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "rlm_engine.cli.main", "mcp"],
        env=env,
        cwd=str(hay.root),  # the default root: the directory it starts in
    )
    outside = tmp_path / "secret.txt"
    outside.write_text("not for the model")
    async with Client(params, read_timeout_seconds=120) as client:
        listed = await client.list_tools()
        assert {t.name for t in listed.tools} == TOOLS
        progress = ProgressLog()
        result = await client.call_tool(
            "rlm_ask",
            {"question": hay.question, "paths": ["haystack.txt"], "max_iterations": 6},
            progress_callback=progress,
        )
        done = result_of(result)
        assert done["answer"] == hay.answer and done["status"] == "completed"
        assert done["sub_calls"] > 0 and done["input_tokens"] > 0
        assert "cost_usd" in done
        progress.check()

        refused = await client.call_tool(
            "rlm_ask", {"question": "what is in it?", "paths": [str(outside)]}
        )
        assert "outside the allowed roots" in error_text(refused)
        escaped = await client.call_tool(
            "rlm_ask", {"question": "what is in it?", "paths": ["../secret.txt"]}
        )
        assert "outside the allowed roots" in error_text(escaped)

        shown = result_of(await client.call_tool("rlm_runs", {"run_id": done["run_id"]}))
        assert [r["answer"] for r in shown["runs"]] == [hay.answer]
        tree = await client.read_resource(f"rlm://runs/{done['run_id']}/tree")
        assert done["run_id"] in tree.contents[0].text  # type: ignore[union-attr]
        notebook = await client.read_resource(f"rlm://runs/{done['run_id']}/notebook")
        assert '"cells"' in notebook.contents[0].text  # type: ignore[union-attr]

    # A stored run like any other, as the local tenant.
    listed_runs = rlm(["runs", "list", "--json"], env)
    assert listed_runs.returncode == 0, listed_runs.stderr
    assert done["run_id"] in listed_runs.stdout


async def test_a_clients_roots_replace_the_start_directory(sim_thread: Any, tmp_path: Path) -> None:
    import mcp_types as types

    registry = OracleRegistry()
    hay = haystack(tmp_path, registry)
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    (workspace / "notes.txt").write_text("the workspace's notes\n" * 20)
    sim = sim_thread(None, OraclePolicy(registry))
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "rlm_engine.cli.main", "mcp"],
        env=server_env(tmp_path / "home", sim.url),
        cwd=str(hay.root),
    )

    async def roots(_context: Any) -> types.ListRootsResult:
        return types.ListRootsResult(roots=[types.Root(uri=workspace.as_uri())])

    async with Client(
        params, mode="legacy", list_roots_callback=roots, read_timeout_seconds=120
    ) as client:
        allowed = await client.call_tool(
            "rlm_ask", {"question": "what is this?", "paths": [str(workspace / "notes.txt")]}
        )
        assert result_of(allowed)["status"] == "completed"
        refused = await client.call_tool(
            "rlm_ask", {"question": hay.question, "paths": [str(hay.path)]}
        )
        assert f"outside the allowed roots ({workspace.resolve()})" in error_text(refused)
