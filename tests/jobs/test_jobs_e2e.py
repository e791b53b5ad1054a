"""The lakehouse jobs end to end in local mode (the issue's acceptance): a tasks Delta table
gets two new rows; `rlm-ingestor --once` triggers exactly two `rlm-orchestrator` runs (and
none after a restart); each run's cells go through `rlm-executor` as artifacts with
markers and `result.json`; the sessions, artifact registry and telemetry tables hold the
runs' rows, read back with deltalake and with DuckDB; the answers are right (simulator)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from orchestrator_support import is_root, job_env, lakehouse, table_rows, turn

from rlm_engine.jobs import markers
from rlm_engine.sim.config import SimConfig
from rlm_engine.sim.policies import CallablePolicy, message_text
from rlm_engine.sim.runner import SimServerThread

INGESTOR = [sys.executable, "-m", "rlm_engine.jobs.ingestor"]
ADD = re.compile(r"add (\d+) and (\d+)")


class TwoCells:
    """Root turn 0: a cell that computes the asked sum into `total` and prints it; turn 1:
    FINAL(total) — a second artifact that needs the first one's variable."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.root_requests = 0

    def __call__(self, messages: list[dict[str, Any]]) -> str:
        assert is_root(messages)
        with self.lock:
            self.root_requests += 1
        if turn(messages) == 0:
            found = ADD.search("\n".join(message_text(m) for m in messages))
            assert found, "the question reached the root prompt"
            return f"```repl\ntotal = {found.group(1)} + {found.group(2)}\nprint(total)\n```"
        return "```repl\nFINAL(str(total))\n```"


def new_tasks(path: Path) -> None:
    """An empty tasks table with the change data feed on, then two new rows."""
    import pyarrow as pa
    from deltalake import write_deltalake

    schema = pa.schema([("task_id", pa.string()), ("prompt", pa.string())])
    config = {"delta.enableChangeDataFeed": "true"}
    write_deltalake(str(path), pa.Table.from_pylist([], schema=schema), configuration=config)
    rows = [
        {"task_id": "t-1", "prompt": "add 2 and 3"},
        {"task_id": "t-2", "prompt": "add 40 and 2"},
    ]
    write_deltalake(str(path), pa.Table.from_pylist(rows, schema=schema), mode="append")


def duck(root: Path, table: str, query: str) -> list[tuple[Any, ...]]:
    """``query`` over the Delta table's current files, read by DuckDB itself (the table's
    log names the live Parquet files; partition columns come from their paths)."""
    import duckdb
    from deltalake import DeltaTable

    files = ", ".join(f"'{f}'" for f in DeltaTable(str(root / table)).file_uris())
    con = duckdb.connect()
    con.execute(
        f"CREATE VIEW {table} AS SELECT * FROM read_parquet([{files}], "
        "hive_partitioning = true, union_by_name = true)"
    )
    return con.execute(query).fetchall()


def test_two_new_task_rows_become_two_runs_through_artifacts_and_tables(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks"
    new_tasks(tasks)
    policy = TwoCells()
    with SimServerThread(SimConfig(), CallablePolicy(policy)) as sim:
        env = job_env(tmp_path, sim.url)
        args = ["--source", f"delta:{tasks}", "--once", "--model", "openai/m", "--json"]
        done = subprocess.run(
            [*INGESTOR, *args], capture_output=True, text=True, env=env, timeout=170, check=False
        )
        assert done.returncode == 0, done.stderr
        reports = {r["task_key"]: r for r in map(json.loads, done.stdout.splitlines())}
        assert {k: (r["status"], r["answer"]) for k, r in reports.items()} == {
            "t-1": ("completed", "5"),
            "t-2": ("completed", "42"),
        }
        assert policy.root_requests == 4  # two runs, two root turns each

        again = subprocess.run(
            [*INGESTOR, *args], capture_output=True, text=True, env=env, timeout=170, check=False
        )
        assert again.returncode == 0, again.stderr
        assert again.stdout == "" and policy.root_requests == 4

    root = lakehouse(tmp_path)
    run_ids = {r["run_id"] for r in reports.values()}
    sessions = {r["session_id"] for r in reports.values()}
    assert len(run_ids) == 2 and len(sessions) == 2

    runs = table_rows(root, "runs")
    assert {r["run_id"] for r in runs} == run_ids
    assert {r["status"] for r in runs} == {"completed"}
    assert {r["answer"] for r in runs} == {"5", "42"}
    assert {r["dedupe_key"].rsplit(":", 1)[1] for r in runs} == {"t-1", "t-2"}

    results = table_rows(root, "results")
    assert {(r["task_id"], r["answer"], r["run_id"]) for r in results} == {
        ("t-1", "5", reports["t-1"]["run_id"]),
        ("t-2", "42", reports["t-2"]["run_id"]),
    }

    # Every cell ran as an artifact through rlm-executor: a completed registry row, its
    # output between the markers in the executor's log, and result.json beside it.
    registry = table_rows(root, "artifact_registry")
    assert {r["session_id"] for r in registry} == sessions
    assert {r["status"] for r in registry} == {"completed"}
    printed: list[str] = []
    for row in registry:
        folder = root / "artifacts" / row["session_id"] / row["artifact_id"]
        result = json.loads((folder / "result.json").read_text())
        assert (result["artifact_id"], result["status"]) == (row["artifact_id"], "success")
        parsed = markers.parse((folder / "executor.log").read_text(), row["artifact_id"])
        assert parsed is not None and parsed[1] == "success"
        printed.append(result["stdout"].strip())
    assert {"5", "42"} <= set(printed)  # each run's first cell printed its sum
    per_session = {s: sum(r["session_id"] == s for r in registry) for s in sessions}
    assert min(per_session.values()) >= 2  # at least the two cells of each run

    assert {r["session_id"] for r in table_rows(root, "sessions")} >= sessions
    telemetry = table_rows(root, "telemetry")
    assert {r["run_id"] for r in telemetry} == run_ids
    assert {"run_started", "run_finished"} <= {r["event_type"] for r in telemetry}

    # The same tables through DuckDB.
    assert sorted(
        duck(
            root,
            "artifact_registry",
            "SELECT session_id, count(*) FROM artifact_registry "
            "WHERE status = 'completed' GROUP BY session_id",
        )
    ) == sorted(per_session.items())
    finished = duck(
        root, "telemetry", "SELECT DISTINCT run_id FROM telemetry WHERE event_type = 'run_finished'"
    )
    assert {r[0] for r in finished} == run_ids
    known = duck(root, "sessions", "SELECT session_id FROM sessions")
    assert sessions <= {r[0] for r in known}
