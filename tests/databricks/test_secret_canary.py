"""No secret value leaves the job that loaded it: a canary in the secret scope, loaded by
the orchestrator at its edge, appears in no log, event, table row or sandbox environment
(a cell prints os.environ, both in an executor job run and in the inline sandbox)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from jobs_support import (
    CANARY,
    CATALOG,
    MODEL,
    ORCHESTRATOR,
    SCHEMA,
    OneSubCallThenFinal,
    workspace,
)

PRINT_ENV = "import os\nreply = 'env:' + repr(sorted(os.environ.items()))\nprint(reply)"
TABLES = ("runs", "telemetry", "artifact_registry", "sessions", "app_state", "user_state")


def everything_written(root: Path) -> bytes:
    """Every file under ``root``: the double's state (run logs, Volume files, the SQL
    warehouse's database) and the orchestrator's home (store, events, journal)."""
    chunks: list[bytes] = []
    for folder, _, names in os.walk(root):
        for name in names:
            try:
                chunks.append((Path(folder) / name).read_bytes())
            except OSError:
                continue
    return b"\n".join(chunks)


@pytest.mark.parametrize("executor", ["process", "inline"])
def test_the_canary_secret_appears_nowhere(tmp_path: Path, executor: str) -> None:
    from databricks.sdk import WorkspaceClient

    from rlm_engine.integrations.databricks.sql import SqlWarehouse

    policy = OneSubCallThenFinal(PRINT_ENV)
    with workspace(tmp_path, policy) as ws:
        argv = [
            *ORCHESTRATOR,
            "--mode=databricks",
            f"--catalog={CATALOG}",
            f"--schema={SCHEMA}",
            f"--executor-job-id={ws.executor_job_id}",
            f"--model={MODEL}",
            f"--executor={executor}",
            "--prompt=print your environment",
            "--session-id=canary",
            "--json",
            "--verbose",
        ]
        done = subprocess.run(
            argv, capture_output=True, text=True, env=ws.env, timeout=170, check=False
        )
        assert done.returncode == 0, done.stderr
        assert ws.double.requests_to("/api/2.0/secrets/get", "GET")  # the canary was loaded
        answer = json.loads(done.stdout.strip().splitlines()[-1])["answer"]
        assert answer.startswith("env:")  # the cell did print its environment
        assert "DATABRICKS_TOKEN" not in answer and ws.double.token not in answer
        assert CANARY not in answer
        assert CANARY not in done.stdout and CANARY not in done.stderr

        client = WorkspaceClient(host=ws.double.url, token=ws.double.token)
        warehouse = SqlWarehouse(client)
        for table in TABLES:
            rows = warehouse.execute(f"SELECT * FROM {CATALOG}.{SCHEMA}.{table}")
            assert CANARY not in json.dumps(rows, default=str), table
        if executor == "process":
            assert ws.runs_of(ws.executor_job_id)  # the cells ran as job runs
            assert all(CANARY not in r.log for r in ws.double.runs.values())
    assert CANARY.encode() not in everything_written(tmp_path / "home")
    assert CANARY.encode() not in everything_written(tmp_path / "workspace" / "volumes")
    assert CANARY.encode() not in everything_written(tmp_path / "workspace" / "runs")
