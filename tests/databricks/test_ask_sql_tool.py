"""`rlm ask --tool databricks-sql`: the user's path to `execute_sql` against a workspace
(here the loopback double), with the credentials kept on the host."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from databricks_double import DatabricksDouble

from rlm_engine.errors import ConfigurationError
from rlm_engine.service.spec import RunSpec
from rlm_engine.service.tool_sets import tools_for
from rlm_engine.sim.config import SimConfig
from rlm_engine.sim.policies import CallablePolicy
from rlm_engine.sim.runner import SimServerThread

CELL = (
    "```repl\n"
    "import os\n"
    'rows = execute_sql("SELECT i * :k AS v FROM range(3) AS t(i) ORDER BY i", {"k": 7})\n'
    "leaked = sorted(k for k in os.environ if k.startswith('DATABRICKS'))\n"
    "FINAL(f\"{[r['v'] for r in rows]}|{leaked}\")\n"
    "```"
)


def test_rlm_ask_with_the_databricks_sql_tool_queries_the_warehouse(tmp_path: Path) -> None:
    def policy(messages: list[dict[str, Any]]) -> str:
        return CELL

    with (
        DatabricksDouble(tmp_path / "ws") as double,
        SimServerThread(SimConfig(), CallablePolicy(policy)) as sim,
    ):
        env = {
            "PATH": os.environ.get("PATH", ""),
            "RLM_HOME": str(tmp_path / "home"),
            "OPENAI_BASE_URL": sim.url,
            "OPENAI_API_KEY": "sim",
            "DATABRICKS_HOST": double.url,
            "DATABRICKS_TOKEN": double.token,
        }
        argv = ["ask", "what is in the warehouse?", "--model", "openai/m", "--json"]
        done = subprocess.run(
            [sys.executable, "-m", "rlm_engine.cli.main", *argv, "--tool", "databricks-sql"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        out = json.loads(done.stdout)
        assert out["answer"] == "[0, 7, 14]|[]"  # rows came back; no credential in the cell
        assert any(path.endswith("/sql/statements") for _, path in double.requests)
        assert double.token not in done.stdout + done.stderr


def test_the_tool_set_is_stored_with_the_run_and_unknown_sets_are_refused() -> None:
    spec = RunSpec(model="openai/m", tools=("databricks-sql",))
    assert RunSpec.from_json(spec.to_json()).tools == ("databricks-sql",)
    assert "tools" not in RunSpec(model="openai/m").to_json()  # runs without it store nothing
    assert set(tools_for(["databricks-sql"])) == {"execute_sql"}  # no workspace until called
    with pytest.raises(ConfigurationError, match="unknown tool set") as raised:
        tools_for(["shell"])
    assert raised.value.hint is not None and "databricks-sql" in raised.value.hint
