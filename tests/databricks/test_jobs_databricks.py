"""The orchestrator and executor in Databricks mode against the workspace double, with the
real databricks-sdk: each cell a run_now of the executor job, its files through the Files
API, its registry row in Unity Catalog (read through the SQL API) with the run's id and
URL, its sub-calls through the serving endpoint (the simulator behind it)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from jobs_support import (
    CATALOG,
    MODEL,
    ORCHESTRATOR,
    SCHEMA,
    VOLUME,
    OneSubCallThenFinal,
    Workspace,
    workspace,
)

from rlm_engine.jobs.databricks_mode import parse_root, passed_model, serving_model
from rlm_engine.jobs.serving_handler import serving_model_name


def orchestrate(ws: Workspace, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [
        *ORCHESTRATOR,
        "--mode",
        "databricks",
        "--catalog",
        CATALOG,
        "--schema",
        SCHEMA,
        "--executor-job-id",
        str(ws.executor_job_id),
        "--model",
        MODEL,
        "--json",
        *args,
    ]
    return subprocess.run(
        argv, capture_output=True, text=True, env=ws.env, timeout=170, check=False
    )


def sql(ws: Workspace, query: str) -> list[dict[str, Any]]:
    """Rows through the Statement Execution API of the double (the project's client)."""
    from databricks.sdk import WorkspaceClient

    from rlm_engine.integrations.databricks.sql import SqlWarehouse

    client = WorkspaceClient(host=ws.double.url, token=ws.double.token)
    return SqlWarehouse(client).execute(query)


CELL = (
    "reply = llm_query('twenty-one doubled?')\n"
    "try:\n    rlm_query('x')\nexcept Exception as exc:\n    print('denied:', exc)\n"
    "print(reply)"
)


def test_a_run_in_databricks_mode_sends_every_cell_through_the_executor_job(
    tmp_path: Path,
) -> None:
    policy = OneSubCallThenFinal(CELL)
    with workspace(tmp_path, policy) as ws:
        done = orchestrate(ws, "--prompt", "what is twenty-one doubled?", "--session-id", "s1")
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout.strip().splitlines()[-1])
        assert result["answer"] == "42"
        assert policy.root_requests == 2
        assert policy.sub_prompts == ["twenty-one doubled?"]  # from the cell, via serving

        rows = sql(ws, f"SELECT * FROM {CATALOG}.{SCHEMA}.artifact_registry")
        runs = ws.runs_of(ws.executor_job_id)
        # one executor job run per cell (the engine's setup cell is an artifact too)
        assert len(rows) >= 2 and len(runs) == len(rows)
        assert {r["status"] for r in rows} == {"completed"}
        by_run = {r.run_id: r for r in runs}
        for row in rows:
            meta = json.loads(row["metadata_json"])
            run = by_run[meta["databricks_run_id"]]
            assert run.params["artifact_id"] == row["artifact_id"]
            assert run.params["session_id"] == "s1"
            assert (run.params["catalog"], run.params["schema"]) == (CATALOG, SCHEMA)
            assert meta["run_page_url"].startswith(ws.double.url)
            assert run.returncode == 0
            base = f"/api/2.0/fs/files{VOLUME}/s1/{row['artifact_id']}"
            assert ("PUT", f"{base}/code.py") in ws.double.requests  # written by the orchestrator
            assert ("GET", f"{base}/code.py") in ws.double.requests  # read by the executor
            assert ("PUT", f"{base}/result.json") in ws.double.requests  # left by the executor
            assert ("GET", f"{base}/result.json") in ws.double.requests  # read back
        assert ws.double.requests_to("/serving-endpoints", "POST")  # root and sub-calls
        outputs = [
            json.loads((ws.double.files_root / key).read_text())["stdout"]
            for key in (
                f"{VOLUME.removeprefix('/Volumes/')}/s1/{r['artifact_id']}/result.json"
                for r in rows
            )
        ]
        (printed,) = [o for o in outputs if "denied:" in o]
        assert "rlm_query is not available in a cell run by the Databricks executor" in printed
        assert printed.rstrip().endswith("42")

        telemetry = sql(ws, f"SELECT event_type, run_id FROM {CATALOG}.{SCHEMA}.telemetry")
        assert {"run_started", "run_finished"} <= {t["event_type"] for t in telemetry}
        assert {t["run_id"] for t in telemetry} == {result["run_id"]}
        run_rows = sql(ws, f"SELECT status, answer FROM {CATALOG}.{SCHEMA}.runs")
        assert [(r["status"], r["answer"]) for r in run_rows] == [("completed", "42")]


def test_an_orchestrator_without_its_executor_job_id_says_what_to_give(tmp_path: Path) -> None:
    with workspace(tmp_path, OneSubCallThenFinal()) as ws:
        argv = [*ORCHESTRATOR, "--mode", "databricks", "--model", MODEL, "--prompt", "q"]
        done = subprocess.run(
            argv, capture_output=True, text=True, env=ws.env, timeout=120, check=False
        )
    assert done.returncode == 2
    assert "databricks mode needs --executor-job-id" in done.stderr
    assert "RLM_EXECUTOR_JOB_ID" in done.stderr


def test_the_mode_helpers_name_their_parts() -> None:
    from rlm_engine.service.spec import RunSpec

    assert parse_root("databricks:main/rlm/17") == ("main", "rlm", 17)
    assert serving_model(RunSpec(model="openai/x", sub_model="databricks/ep")) == "databricks/ep"
    assert serving_model(RunSpec(model="databricks/root")) == "databricks/root"
    assert serving_model(RunSpec(model="openai/x")) is None
    assert serving_model_name("ep", None) == "databricks/ep"
    assert serving_model_name(None, "databricks/run") == "databricks/run"
    assert passed_model(["--model", "databricks/ep"]) == "databricks/ep"


def test_volume_files_go_through_the_files_api(tmp_path: Path) -> None:
    from databricks.sdk import WorkspaceClient
    from databricks_double import DatabricksDouble

    from rlm_engine.errors import ConfigurationError
    from rlm_engine.jobs.artifact_files import VolumeArtifactFiles

    with DatabricksDouble(tmp_path / "ws") as double:
        client = WorkspaceClient(host=double.url, token=double.token)
        files = VolumeArtifactFiles(client, VOLUME)
        assert files.read_bytes("s/a/result.json") is None
        files.write_bytes("s/a/result.json", b"{}")
        assert files.read_bytes("s/a/result.json") == b"{}"
        on_disk = double.files_root / VOLUME.removeprefix("/Volumes/") / "s/a/result.json"
        assert on_disk.read_bytes() == b"{}"
        files.delete("s/a/result.json")
        files.delete("s/a/result.json")  # already gone: fine
        assert files.read_bytes("s/a/result.json") is None
        assert files.local_root() is None and files.where("k") == f"{VOLUME}/k"
        assert ("PUT", f"/api/2.0/fs/files{VOLUME}/s/a/result.json") in double.requests
    try:
        VolumeArtifactFiles(client, "/tmp/x")
    except ConfigurationError as exc:
        assert "/Volumes/" in (exc.hint or "")
    else:
        raise AssertionError("a non-Volume root was accepted")


WAIT_FOR_FIFO = "import sys\nprint('read', open(sys.argv[1]).read())\n"


def test_a_resumed_orchestrator_waits_for_the_executor_run_it_had_started(tmp_path: Path) -> None:
    import asyncio
    import os
    import sys

    from databricks.sdk import WorkspaceClient
    from databricks_double import DatabricksDouble

    from rlm_engine.integrations.delta_lake import Lakehouse
    from rlm_engine.jobs.artifact_files import VolumeArtifactFiles
    from rlm_engine.jobs.artifacts import ArtifactRegistry
    from rlm_engine.jobs.executor_process import Exit
    from rlm_engine.jobs.remote_executor import RemoteExecutor, note_run, start_run

    gate = tmp_path / "gate"
    os.mkfifo(gate)
    with DatabricksDouble(tmp_path / "ws") as double:
        job = double.add_job("slow", lambda _: [sys.executable, "-c", WAIT_FOR_FIFO, str(gate)])
        client = WorkspaceClient(host=double.url, token=double.token)
        registry = ArtifactRegistry(
            Lakehouse(str(tmp_path / "lake")), files=VolumeArtifactFiles(client, VOLUME)
        )
        registry.lake.ensure("artifact_registry")
        registry.create("a1", session_id="s", invocation_id="r", iteration=1, code="x = 1")
        launcher = RemoteExecutor(client, job, catalog=CATALOG, schema=SCHEMA, session_id="s")
        fresh = registry.get("a1")
        assert fresh is not None
        assert asyncio.run(launcher.adopt(registry, fresh, 60.0)) is None  # no run named yet

        run_id = start_run(client, job, launcher.parameters("a1"))  # the dead orchestrator's
        note_run(registry, "a1", run_id, None)
        row = registry.get("a1")
        assert row is not None and row.metadata["databricks_run_id"] == run_id

        def polls() -> int:
            return sum("/jobs/runs/get" in path for _, path in double.requests_to("/api/"))

        async def resume() -> Exit | None:
            before = polls()
            waiting = asyncio.create_task(launcher.adopt(registry, row, 60.0))
            for _ in range(1500):  # the run is seen running before it is let go
                if polls() > before:
                    break
                await asyncio.sleep(0.02)
            await asyncio.to_thread(gate.write_text, "go")  # blocks until the run reads it
            return await waiting

        ended = asyncio.run(resume())
        assert ended is not None and ended.returncode == 0
        assert len(double.runs) == 1  # waited for, not started again
        log = registry.files.read_bytes("s/a1/executor.log")
        assert log is not None and b"read go" in log
        again = registry.get("a1")
        assert again is not None
        assert asyncio.run(launcher.adopt(registry, again, 60.0)) is None  # it has ended
