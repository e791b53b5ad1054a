"""The loopback Databricks double against the real, unmodified databricks-sdk."""

from __future__ import annotations

import base64
import io
import json
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk import errors as sdk_errors
from databricks.sdk.service._internal import Wait
from databricks.sdk.service.jobs import (
    JobParameterDefinition,
    JobSettings,
    PythonWheelTask,
    Run,
    RunLifeCycleState,
    RunNowResponse,
    RunResultState,
    Task,
)
from databricks.sdk.service.serving import ChatMessage, ChatMessageRole
from databricks.sdk.service.sql import (
    Disposition,
    Format,
    StatementParameterListItem,
    StatementResponse,
    StatementState,
)
from databricks_double import DatabricksDouble

from rlm_engine.lm.lifecycle import aclose_model
from rlm_engine.lm.registry import resolve_model
from rlm_engine.sim import SimConfig
from rlm_engine.sim.policies import CallablePolicy, JsonMessage, message_text
from rlm_engine.sim.runner import SimServerThread
from rlm_engine.types import Message


@pytest.fixture
def double(tmp_path: Path) -> Iterator[DatabricksDouble]:
    with DatabricksDouble(tmp_path / "workspace") as workspace:
        yield workspace
        assert workspace.errors == []  # no request made the double itself fail


@pytest.fixture
def w(double: DatabricksDouble) -> WorkspaceClient:
    return WorkspaceClient(host=double.url, token=double.token)


def _wait(waiter: Wait[Run]) -> Run:
    """The SDK's own waiter: polls runs/get until the run terminates."""
    return waiter.result(callback=lambda _progress: None)


def _run_id(waiter: Wait[Run]) -> int:
    response = cast(RunNowResponse, waiter.response)  # pyright: ignore[reportUnknownMemberType]
    assert response.run_id is not None
    return response.run_id


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


# -- jobs ---------------------------------------------------------------------------------


def test_run_now_runs_the_command_with_merged_parameters_and_the_sdk_waiter_sees_success(
    double: DatabricksDouble, w: WorkspaceClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOST_ONLY_CANARY", "must-not-reach-the-job")
    code = """
        import os, sys
        print("artifact", sys.argv[1], "session", sys.argv[2])
        print("host", os.environ["DATABRICKS_HOST"], "extra", os.environ["EXTRA"])
        print("canary" if "HOST_ONLY_CANARY" in os.environ else "clean")
    """
    job_id = double.add_job(
        "rlm-executor",
        lambda p: [*_python(code), p["artifact_id"], p["session_id"]],
        env={"EXTRA": "given"},
        parameters={"artifact_id": "default", "session_id": "s-default"},
    )

    run = _wait(w.jobs.run_now(job_id, job_parameters={"artifact_id": "a-1"}))

    assert run.state is not None
    assert run.state.life_cycle_state == RunLifeCycleState.TERMINATED
    assert run.state.result_state == RunResultState.SUCCESS
    assert run.run_page_url is not None and run.run_page_url.startswith(double.url)
    assert run.tasks is not None and len(run.tasks) == 1
    task_run_id = run.tasks[0].run_id
    assert task_run_id is not None and task_run_id != run.run_id
    output = w.jobs.get_run_output(task_run_id)
    assert output.logs is not None
    assert "artifact a-1 session s-default" in output.logs
    assert f"host {double.url} extra given" in output.logs
    assert "clean" in output.logs
    assert run.run_id is not None
    record = double.runs[run.run_id]
    assert record.params == {"artifact_id": "a-1", "session_id": "s-default"}
    assert record.returncode == 0
    assert record.argv[-2:] == ["a-1", "s-default"]
    assert {p.name: p.value for p in run.job_parameters or []} == record.params


def test_a_failing_run_is_failed_with_its_output_and_the_job_run_id_has_no_output(
    double: DatabricksDouble, w: WorkspaceClient
) -> None:
    job_id = double.add_job("broken", lambda _: _python("import sys; print('boom'); sys.exit(3)"))

    run = _wait(w.jobs.run_now(job_id))

    assert run.state is not None and run.state.result_state == RunResultState.FAILED
    assert run.run_id is not None and run.tasks is not None and run.tasks[0].run_id is not None
    output = w.jobs.get_run_output(run.tasks[0].run_id)
    assert output.error is not None and "code 3" in output.error
    assert output.logs is not None and "boom" in output.logs
    with pytest.raises(sdk_errors.InvalidParameterValue, match="multiple tasks"):
        w.jobs.get_run_output(run.run_id)
    assert double.runs[run.run_id].returncode == 3


def test_a_job_run_calls_back_into_the_double_through_the_sdk(
    double: DatabricksDouble, w: WorkspaceClient
) -> None:
    """The run's environment points the SDK at the double, as a job cluster's identity would."""
    code = """
        import io, sys
        from databricks.sdk import WorkspaceClient
        w = WorkspaceClient()
        w.files.upload(sys.argv[1], io.BytesIO(b"from the job"), overwrite=True)
    """
    job_id = double.add_job("writer", lambda p: [*_python(code), p["path"]])

    run = _wait(w.jobs.run_now(job_id, job_parameters={"path": "/Volumes/c/s/v/out.txt"}))

    assert run.state is not None and run.state.result_state == RunResultState.SUCCESS
    assert (double.files_root / "c" / "s" / "v" / "out.txt").read_bytes() == b"from the job"


def _state_until(
    w: WorkspaceClient, run_id: int, wanted: RunLifeCycleState, timeout_s: float = 30.0
) -> list[RunLifeCycleState | None]:
    """Poll runs/get until the run reaches ``wanted``; the states seen, in order."""
    seen: list[RunLifeCycleState | None] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = w.jobs.get_run(run_id).state
        current = state.life_cycle_state if state else None
        if not seen or seen[-1] != current:
            seen.append(current)
        if current == wanted:
            return seen
    raise AssertionError(f"run {run_id} never reached {wanted}: {seen}")


def test_a_run_goes_pending_running_terminated(
    double: DatabricksDouble, w: WorkspaceClient, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    code = """
        import os, sys, time
        deadline = time.monotonic() + 60
        while not os.path.exists(sys.argv[1]) and time.monotonic() < deadline:
            time.sleep(0.01)
    """
    job_id = double.add_job("gated", lambda _: [*_python(code), str(gate)])
    double.hold_runs()

    waiter = w.jobs.run_now(job_id)
    run_id = _run_id(waiter)
    assert _state_until(w, run_id, RunLifeCycleState.PENDING) == [RunLifeCycleState.PENDING]
    double.release_runs()
    assert _state_until(w, run_id, RunLifeCycleState.RUNNING)[-1] == RunLifeCycleState.RUNNING
    gate.touch()
    run = _wait(waiter)

    assert run.state is not None and run.state.result_state == RunResultState.SUCCESS
    assert [r.run_id for r in w.jobs.list_runs(job_id=job_id)] == [run_id]


def test_a_cancelled_run_ends_canceled(double: DatabricksDouble, w: WorkspaceClient) -> None:
    job_id = double.add_job("sleeper", lambda _: _python("import time; time.sleep(120)"))
    waiter = w.jobs.run_now(job_id)
    run_id = _run_id(waiter)
    _state_until(w, run_id, RunLifeCycleState.RUNNING)

    w.jobs.cancel_run(run_id)
    run = _wait(waiter)

    assert run.state is not None and run.state.result_state == RunResultState.CANCELED
    assert run.state.user_cancelled_or_timedout


def test_jobs_created_through_the_api_are_listed_updated_and_reset(
    double: DatabricksDouble, w: WorkspaceClient
) -> None:
    task = Task(
        task_key="orchestrate",
        python_wheel_task=PythonWheelTask(
            package_name="rlm_engine", entry_point="rlm-orchestrator"
        ),
    )
    created = w.jobs.create(
        name="rlm-orchestrator",
        tasks=[task],
        parameters=[JobParameterDefinition(name="executor_job_id", default="")],
    )
    assert created.job_id is not None
    listed = list(w.jobs.list(name="RLM-orchestrator"))
    assert [j.job_id for j in listed] == [created.job_id]

    w.jobs.update(
        created.job_id,
        new_settings=JobSettings(
            parameters=[JobParameterDefinition(name="executor_job_id", default="42")]
        ),
    )
    job = w.jobs.get(created.job_id)
    assert job.settings is not None and job.settings.parameters is not None
    assert [(p.name, p.default) for p in job.settings.parameters] == [("executor_job_id", "42")]
    assert job.settings.tasks is not None and job.settings.tasks[0].task_key == "orchestrate"

    run = _wait(w.jobs.run_now(created.job_id))  # no local command: recorded only
    assert run.state is not None and run.state.result_state == RunResultState.SUCCESS
    assert run.run_id is not None and double.runs[run.run_id].params == {"executor_job_id": "42"}

    w.jobs.reset(created.job_id, new_settings=JobSettings(name="renamed"))
    assert [j["settings"]["name"] for j in double.jobs] == ["renamed"]
    # The workspace answers 400 INVALID_PARAMETER_VALUE; the SDK maps it to a typed 404 error.
    with pytest.raises(sdk_errors.ResourceDoesNotExist, match="Job 999 does not exist"):
        w.jobs.get(999)
    with pytest.raises(sdk_errors.ResourceDoesNotExist, match="Run 999 does not exist"):
        w.jobs.get_run(999)


# -- files ----------------------------------------------------------------------------------


def test_files_round_trip_through_the_files_api_and_live_under_files_root(
    double: DatabricksDouble, w: WorkspaceClient
) -> None:
    path = "/Volumes/main/rlm/artifacts/a-1/code.py"
    w.files.upload(path, io.BytesIO(b"print(1)\n"), overwrite=True)

    contents = w.files.download(path).contents
    assert contents is not None and contents.read() == b"print(1)\n"
    assert (double.files_root / "main/rlm/artifacts/a-1/code.py").read_bytes() == b"print(1)\n"
    assert w.files.get_metadata(path).content_length == 9
    listed = list(w.files.list_directory_contents("/Volumes/main/rlm/artifacts/a-1"))
    assert [(e.name, e.is_directory, e.file_size) for e in listed] == [("code.py", False, 9)]
    w.files.create_directory("/Volumes/main/rlm/artifacts/empty")
    w.files.get_directory_metadata("/Volumes/main/rlm/artifacts/empty")
    assert ("PUT", "/api/2.0/fs/files" + path) in double.requests

    with pytest.raises(sdk_errors.AlreadyExists):
        w.files.upload(path, io.BytesIO(b"again"), overwrite=False)
    w.files.upload(path, io.BytesIO(b"print(2)\n"))  # unspecified overwrite: overwrites
    assert (double.files_root / "main/rlm/artifacts/a-1/code.py").read_bytes() == b"print(2)\n"
    w.files.delete(path)
    with pytest.raises(sdk_errors.NotFound):
        w.files.download(path)
    with pytest.raises(sdk_errors.NotFound):
        w.files.get_metadata(path)
    with pytest.raises(sdk_errors.InvalidParameterValue, match="volume path"):
        w.files.upload("/tmp/elsewhere.txt", io.BytesIO(b"x"), overwrite=True)


# -- secrets ----------------------------------------------------------------------------------


def test_secrets_are_stored_per_scope_and_travel_base64(
    double: DatabricksDouble, w: WorkspaceClient
) -> None:
    w.secrets.create_scope("rlm-secrets")
    w.secrets.put_secret("rlm-secrets", "OPENAI_API_KEY", string_value="sk-canary")
    encoded = base64.b64encode(b"job-42").decode()
    w.secrets.put_secret("rlm-secrets", "executor_job_id", bytes_value=encoded)

    got = w.secrets.get_secret("rlm-secrets", "OPENAI_API_KEY")
    assert got.value is not None and base64.b64decode(got.value) == b"sk-canary"
    assert double.secrets == {
        "rlm-secrets": {"OPENAI_API_KEY": "sk-canary", "executor_job_id": "job-42"}
    }
    assert [s.name for s in w.secrets.list_scopes()] == ["rlm-secrets"]
    keys = sorted(s.key or "" for s in w.secrets.list_secrets("rlm-secrets"))
    assert keys == ["OPENAI_API_KEY", "executor_job_id"]

    with pytest.raises(sdk_errors.ResourceDoesNotExist):
        w.secrets.get_secret("rlm-secrets", "missing")
    with pytest.raises(sdk_errors.ResourceDoesNotExist):
        w.secrets.get_secret("no-such-scope", "k")
    with pytest.raises(sdk_errors.ResourceAlreadyExists):
        w.secrets.create_scope("rlm-secrets")


# -- SQL ----------------------------------------------------------------------------------


def _execute(
    w: WorkspaceClient, warehouse_id: str, sql: str, **params: tuple[str, str | None]
) -> StatementResponse:
    return w.statement_execution.execute_statement(
        sql,
        warehouse_id,
        parameters=[
            StatementParameterListItem(name=k, type=t, value=v) for k, (t, v) in params.items()
        ],
        wait_timeout="30s",
        disposition=Disposition.INLINE,
        format=Format.JSON_ARRAY,
    )


def _rows(response: StatementResponse) -> list[list[str | None]]:
    assert response.status is not None
    assert response.status.state == StatementState.SUCCEEDED, response.status.error
    assert response.result is not None
    return [list(row) for row in response.result.data_array or []]


def test_statements_run_databricks_sql_over_duckdb_with_bound_parameters(
    double: DatabricksDouble, w: WorkspaceClient
) -> None:
    warehouses = list(w.warehouses.list())
    assert [wh.state.value if wh.state else None for wh in warehouses] == ["RUNNING"]
    warehouse_id = warehouses[0].id
    assert warehouse_id is not None
    assert w.warehouses.get(warehouse_id).name == warehouses[0].name

    _rows(
        _execute(
            w,
            warehouse_id,
            "CREATE TABLE IF NOT EXISTS `main`.`rlm`.tasks (task_id STRING COMMENT 'key', "
            "attempts BIGINT, updated_at TIMESTAMP) USING DELTA PARTITIONED BY (task_id) "
            "TBLPROPERTIES ('delta.enableChangeDataFeed' = 'true')",
        )
    )
    merge = (
        "MERGE INTO main.rlm.tasks AS t USING (SELECT :id AS task_id, :n AS attempts, "
        "CAST(NULL AS TIMESTAMP) AS updated_at) AS s ON t.task_id = s.task_id "
        "WHEN MATCHED AND s.attempts > t.attempts THEN UPDATE SET * "
        "WHEN NOT MATCHED THEN INSERT *"
    )
    _execute(w, warehouse_id, merge, id=("STRING", "t-1"), n=("BIGINT", "1"))
    _execute(w, warehouse_id, merge, id=("STRING", "t-1"), n=("BIGINT", "3"))
    _execute(w, warehouse_id, merge, id=("STRING", "t-1"), n=("BIGINT", "2"))  # not newer
    _execute(w, warehouse_id, merge, id=("STRING", "t-2"), n=("BIGINT", "1"))

    response = _execute(
        w,
        warehouse_id,
        "SELECT task_id, attempts FROM main.rlm.tasks WHERE attempts >= :min ORDER BY task_id",
        min=("INT", "1"),
    )
    assert _rows(response) == [["t-1", "3"], ["t-2", "1"]]
    assert response.manifest is not None and response.manifest.schema is not None
    columns = response.manifest.schema.columns or []
    assert [(c.name, c.type_text) for c in columns] == [
        ("task_id", "STRING"),
        ("attempts", "BIGINT"),
    ]
    history = _rows(_execute(w, warehouse_id, "DESCRIBE HISTORY main.rlm.tasks LIMIT 1"))
    assert history[0][0] == "4" and history[0][2] == "MERGE"
    assert double.sql('SELECT count(*) FROM "main__rlm".tasks') == [(2,)]
    assert double.sql_statements[-1].startswith("DESCRIBE HISTORY")


def test_statement_failures_unbound_parameters_and_unknown_warehouses(
    w: WorkspaceClient, double: DatabricksDouble
) -> None:
    warehouse_id = next(iter(w.warehouses.list())).id
    assert warehouse_id is not None

    missing = _execute(w, warehouse_id, "SELECT * FROM main.rlm.nope")
    assert missing.status is not None and missing.status.state == StatementState.FAILED
    assert missing.status.error is not None
    assert "TABLE_OR_VIEW_NOT_FOUND" in (missing.status.error.message or "")

    unbound = _execute(w, warehouse_id, "SELECT :x AS x")
    assert unbound.status is not None and unbound.status.error is not None
    assert "UNBOUND_SQL_PARAMETER" in (unbound.status.error.message or "")
    assert _rows(_execute(w, warehouse_id, "SELECT :x AS x", x=("STRING", None))) == [[None]]

    with pytest.raises(sdk_errors.NotFound):
        _execute(w, "no-such-warehouse", "SELECT 1")


def test_large_results_page_through_chunks_and_zero_wait_needs_polling(
    double: DatabricksDouble, w: WorkspaceClient
) -> None:
    double.sql_chunk_rows = 100
    warehouse_id = next(iter(w.warehouses.list())).id
    assert warehouse_id is not None

    response = _execute(w, warehouse_id, "SELECT i FROM range(250) t(i) ORDER BY i")
    assert response.manifest is not None and response.manifest.total_chunk_count == 3
    assert response.manifest.total_row_count == 250
    values = [row[0] for row in _rows(response)]
    result = response.result
    assert result is not None and response.statement_id is not None
    while result.next_chunk_index is not None:
        result = w.statement_execution.get_statement_result_chunk_n(
            response.statement_id, result.next_chunk_index
        )
        values += [row[0] for row in result.data_array or []]
    assert values == [str(i) for i in range(250)]

    pending = w.statement_execution.execute_statement("SELECT 7", warehouse_id, wait_timeout="0s")
    assert pending.status is not None and pending.status.state == StatementState.PENDING
    assert pending.statement_id is not None
    states: list[StatementState | None] = []
    final = pending
    while final.status is None or final.status.state != StatementState.SUCCEEDED:
        final = w.statement_execution.get_statement(pending.statement_id)
        states.append(final.status.state if final.status else None)
    assert states == [StatementState.RUNNING, StatementState.SUCCEEDED]
    assert _rows(final) == [["7"]]


# -- serving, current user, clusters ----------------------------------------------------------


def test_serving_queries_reach_the_backend_with_the_endpoint_as_the_model(tmp_path: Path) -> None:
    def reply(messages: list[JsonMessage]) -> str:
        return "answer to " + message_text(messages[-1])

    with (
        SimServerThread(SimConfig(), CallablePolicy(reply)) as sim,
        DatabricksDouble(tmp_path / "ws", serving_base_url=sim.url) as double,
    ):
        w = WorkspaceClient(host=double.url, token=double.token)
        result = w.serving_endpoints.query(
            "rlm-llm", messages=[ChatMessage(role=ChatMessageRole.USER, content="hi")]
        )
        assert result.choices is not None and result.choices[0].message is not None
        assert result.choices[0].message.content == "answer to hi"

        request = urllib.request.Request(  # the OpenAI client's path, base {host}/serving-endpoints
            f"{double.url}/serving-endpoints/chat/completions",
            data=json.dumps(
                {"model": "rlm-llm", "messages": [{"role": "user", "content": "again"}]}
            ).encode(),
            headers={"Authorization": f"Bearer {double.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            body: dict[str, Any] = json.loads(response.read())
        assert body["choices"][0]["message"]["content"] == "answer to again"

        streamed = urllib.request.Request(
            f"{double.url}/serving-endpoints/rlm-llm/invocations",
            data=json.dumps(
                {"stream": True, "messages": [{"role": "user", "content": "stream"}]}
            ).encode(),
            headers={"Authorization": f"Bearer {double.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(streamed, timeout=30) as response:
            assert response.headers["Content-Type"].startswith("text/event-stream")
            events = [
                json.loads(line.removeprefix("data: "))
                for line in response.read().decode().splitlines()
                if line.startswith("data: {")
            ]
        deltas = "".join(
            e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"]
        )
        assert deltas == "answer to stream"

        assert [(r.model, r.streamed) for r in sim.requests] == [
            ("rlm-llm", False),
            ("rlm-llm", False),
            ("rlm-llm", True),
        ]
        assert [e.name for e in w.serving_endpoints.list()] == ["rlm-llm"]
        assert w.serving_endpoints.get("rlm-llm").state is not None
        with pytest.raises(sdk_errors.ResourceDoesNotExist):
            w.serving_endpoints.get("other")


async def test_the_projects_databricks_model_answers_through_the_double(tmp_path: Path) -> None:
    """``databricks/<endpoint>`` (an OpenAI client on ``{host}/serving-endpoints``) works."""
    with (
        SimServerThread(SimConfig(), CallablePolicy(lambda m: "via " + message_text(m[-1]))) as sim,
        DatabricksDouble(tmp_path / "ws", serving_base_url=sim.url) as double,
    ):
        env = {"DATABRICKS_HOST": double.url, "DATABRICKS_TOKEN": double.token}
        model = resolve_model("databricks/rlm-llm", env=env)
        try:
            completion = await model.complete([Message("user", "serving")])
        finally:
            await aclose_model(model)

        assert completion.text == "via serving"
        assert [r.model for r in sim.requests] == ["rlm-llm"]
        assert ("POST", "/serving-endpoints/chat/completions") in double.requests


def test_serving_without_a_backend_and_a_remote_backend_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="loopback"):
        DatabricksDouble(tmp_path / "a", serving_base_url="https://api.openai.com/v1")
    with DatabricksDouble(tmp_path / "b") as double:
        w = WorkspaceClient(host=double.url, token=double.token)
        with pytest.raises(sdk_errors.NotFound, match="no serving backend"):
            w.serving_endpoints.query("x", messages=[ChatMessage(role=ChatMessageRole.USER)])


def test_current_user_and_one_running_cluster(w: WorkspaceClient) -> None:
    me = w.current_user.me()
    assert me.user_name == "tester@example.com" and me.active
    clusters = list(w.clusters.list())
    assert len(clusters) == 1 and clusters[0].state is not None
    assert clusters[0].state.value == "RUNNING"
    assert clusters[0].cluster_id is not None
    assert w.clusters.get(clusters[0].cluster_id).cluster_name == clusters[0].cluster_name
    with pytest.raises(sdk_errors.ResourceDoesNotExist):
        w.clusters.get("nope")


# -- auth and unknown paths ---------------------------------------------------------------------


def test_requests_without_a_token_get_401_and_a_wrong_token_403(double: DatabricksDouble) -> None:
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(f"{double.url}/api/2.0/preview/scim/v2/Me", timeout=10)
    assert raised.value.code == 401
    assert json.loads(raised.value.read())["error_code"] == "UNAUTHENTICATED"

    wrong = WorkspaceClient(host=double.url, token="dapi-wrong")
    with pytest.raises(sdk_errors.PermissionDenied, match="Invalid access token"):
        wrong.current_user.me()


def test_unknown_endpoints_answer_404_in_the_workspace_shape(
    double: DatabricksDouble, w: WorkspaceClient
) -> None:
    with pytest.raises(sdk_errors.NotFound, match="No API found"):
        do = cast(Callable[..., object], w.api_client.do)  # pyright: ignore[reportUnknownMemberType]
        do("GET", "/api/2.0/unity-catalog/catalogs")
    assert ("GET", "/api/2.0/unity-catalog/catalogs") in double.requests
