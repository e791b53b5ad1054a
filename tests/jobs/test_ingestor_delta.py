"""The delta: source end to end: new rows of a tasks table's change data feed become
`rlm-orchestrator` runs (real subprocesses against the simulator), answers land in the
results table, and neither a restart nor a kill -9 of the ingestor mid-run drops or
repeats a task."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from orchestrator_support import is_root, job_env, lakehouse, table_rows, turn

from rlm_engine.integrations.delta_lake import Lakehouse
from rlm_engine.jobs.ingestor import Ingestor
from rlm_engine.jobs.sources import SourceOptions, open_source
from rlm_engine.jobs.triggers import RunRequest, TriggerResult
from rlm_engine.sim.config import SimConfig
from rlm_engine.sim.policies import CallablePolicy, message_text
from rlm_engine.sim.runner import SimServerThread

INGESTOR = [sys.executable, "-m", "rlm_engine.jobs.ingestor"]
ADD = re.compile(r"add (\d+) and (\d+)")


def question_sum(messages: list[dict[str, Any]]) -> tuple[str, str]:
    found = ADD.search("\n".join(message_text(m) for m in messages))
    assert found, "the question reached the root prompt"
    return found.group(1), found.group(2)


def adder(messages: list[dict[str, Any]]) -> str:
    """Root: one cell that computes the asked sum in the REPL and ends the run."""
    a, b = question_sum(messages)
    return f"```repl\nFINAL(str({a} + {b}))\n```"


def tasks_table(path: Path, rows: list[dict[str, Any]], *, cdf: bool = True) -> None:
    """Append ``rows`` to the tasks table at ``path`` (created, with the feed on, if new)."""
    import pyarrow as pa
    from deltalake import write_deltalake

    schema = pa.schema([("task_id", pa.string()), ("prompt", pa.string()), ("model", pa.string())])
    table = pa.Table.from_pylist(rows, schema=schema)
    config = {"delta.enableChangeDataFeed": "true"} if cdf else None
    write_deltalake(str(path), table, mode="append", configuration=config)


def ingest(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*INGESTOR, *args], capture_output=True, text=True, env=env, timeout=150, check=False
    )


def test_new_rows_are_answered_into_the_results_table_once(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks"
    tasks_table(tasks, [{"task_id": "t1", "prompt": "add 2 and 2"}])
    with SimServerThread(SimConfig(), CallablePolicy(adder)) as sim:
        env = job_env(tmp_path, sim.url)
        args = ["--source", f"delta:{tasks}", "--once", "--model", "openai/m"]
        args += ["--executor", "inline", "--json"]
        first = ingest(args, env)
        assert first.returncode == 0, first.stderr
        assert [json.loads(x)["task_key"] for x in first.stdout.splitlines()] == ["t1"]

        tasks_table(
            tasks,
            [
                {"task_id": "t2", "prompt": "add 5 and 6"},
                {"task_id": "t3", "prompt": "add 7 and 8", "model": "openai/row-model"},
            ],
        )
        second = ingest(args, env)
        assert second.returncode == 0, second.stderr
        out = {json.loads(x)["task_key"]: json.loads(x) for x in second.stdout.splitlines()}
        assert {k: v["answer"] for k, v in out.items()} == {"t2": "11", "t3": "15"}
        assert {r.model for r in sim.requests} == {"m", "row-model"}

        root = lakehouse(tmp_path)
        results = {r["task_id"]: r for r in table_rows(root, "results")}
        assert {k: (r["status"], r["answer"]) for k, r in results.items()} == {
            "t1": ("completed", "4"),
            "t2": ("completed", "11"),
            "t3": ("completed", "15"),
        }
        assert results["t2"]["run_id"] == out["t2"]["run_id"]
        state = table_rows(root, "ingest_state")
        assert [s["watermark"] for s in state] == ["1"]  # the last tasks table version read

        asked = len(sim.requests)
        third = ingest(args, env)
        assert third.returncode == 0 and third.stdout == ""
        assert len(sim.requests) == asked


def test_a_table_without_the_change_data_feed_is_refused_with_the_fix(tmp_path: Path) -> None:
    tasks = tmp_path / "plain"
    tasks_table(tasks, [{"task_id": "t1", "prompt": "add 1 and 1"}], cdf=False)
    env = job_env(tmp_path, "http://127.0.0.1:9/v1")
    done = ingest(["--source", f"delta:{tasks}", "--once"], env)
    assert done.returncode == 2
    assert "change data feed" in done.stderr
    assert "SET TBLPROPERTIES (delta.enableChangeDataFeed = true)" in done.stderr
    assert "alter.set_table_properties" in done.stderr
    none = ingest(["--source", f"delta:{tmp_path / 'missing'}", "--once"], env)
    assert none.returncode == 2 and "no Delta table" in none.stderr


class Answering:
    """A trigger that answers each run at once with the sum its prompt asks for."""

    def __init__(self) -> None:
        self.requests: list[RunRequest] = []

    def run(self, request: RunRequest) -> TriggerResult:
        self.requests.append(request)
        total = sum(int(n) for n in re.findall(r"\d+", request.prompt))
        return TriggerResult("completed", f"run-{len(self.requests)}", str(total))

    def stop(self) -> None:
        pass


def test_results_go_to_the_table_given_by_results(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks"
    tasks_table(tasks, [{"task_id": "a", "prompt": "add 20 and 22"}])
    out_table = tmp_path / "answers"
    lake = Lakehouse(tmp_path / "lake")
    source = open_source(
        f"delta:{tasks}", SourceOptions(results=str(out_table), lakehouse_root=lake.root)
    )
    trigger = Answering()
    [report] = Ingestor(source, lake, trigger).poll_once()
    assert (report.key, report.status, report.answer) == ("a", "completed", "42")
    from deltalake import DeltaTable

    rows = DeltaTable(str(out_table)).to_pyarrow_table().to_pylist()
    assert [(r["task_id"], r["answer"], r["status"]) for r in rows] == [("a", "42", "completed")]
    assert lake.read("results") == []  # nothing in the lakehouse's own results table

    # The same task id inserted again is the same task: one run per task id.
    tasks_table(tasks, [{"task_id": "a", "prompt": "add 1 and 1"}])
    assert Ingestor(source, lake, trigger).poll_once() == []
    assert len(trigger.requests) == 1
    assert Ingestor(source, lake, trigger).watermark() == "1"


class Holding:
    """Root turn 0: a cell whose sub-call is held (never answered) until `release`; then
    FINAL with the sub-call's reply. `held` is set when the sub-call arrives."""

    def __init__(self) -> None:
        self.held = threading.Event()
        self.release = threading.Event()
        self.root_turns: list[int] = []
        self.sub_calls = 0

    async def __call__(self, messages: list[dict[str, Any]]) -> str:
        if is_root(messages):
            self.root_turns.append(turn(messages))
            if turn(messages) == 0:
                a, b = question_sum(messages)
                return f"```repl\nx = llm_query('sum of {a} and {b}')\nprint(x)\n```"
            return "```repl\nFINAL(x)\n```"
        self.sub_calls += 1
        if self.sub_calls == 1:
            self.held.set()
            while not self.release.is_set():
                await asyncio.sleep(0.02)
        numbers = re.findall(r"\d+", message_text(messages[-1]))
        return str(sum(int(n) for n in numbers))


def test_a_kill_9_mid_run_then_a_restart_resumes_the_task_and_repeats_nothing(
    tmp_path: Path,
) -> None:
    tasks = tmp_path / "tasks"
    tasks_table(tasks, [{"task_id": "k1", "prompt": "add 30 and 12"}])
    policy = Holding()
    with SimServerThread(SimConfig(), CallablePolicy(policy)) as sim:
        env = job_env(tmp_path, sim.url)
        args = ["--source", f"delta:{tasks}", "--once", "--model", "openai/m", "--json"]
        args += ["--executor", "inline"]
        proc = subprocess.Popen(
            [*INGESTOR, *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own group: the kill takes its orchestrator too
        )
        try:
            deadline = time.monotonic() + 90
            while not policy.held.wait(0.1):
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "the run never reached its sub-call"
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=30)
        policy.release.set()
        root = lakehouse(tmp_path)
        [logged] = table_rows(root, "ingest_log")
        assert (logged["status"], logged["attempts"]) == ("triggered", 1)
        assert table_rows(root, "results") == []

        again = ingest(args, env)
        assert again.returncode == 0, again.stderr
        [report] = [json.loads(x) for x in again.stdout.splitlines()]
        assert (report["task_key"], report["status"], report["answer"]) == ("k1", "completed", "42")
        runs = table_rows(root, "runs")
        assert [r["run_id"] for r in runs] == [report["run_id"]]  # resumed, not started anew
        assert runs[0]["dedupe_key"].endswith(":k1")
        assert policy.root_turns == [0, 1]  # the journaled root turn was not asked again
        [logged] = table_rows(root, "ingest_log")
        assert (logged["status"], logged["attempts"]) == ("completed", 2)


class Losing:
    """A trigger whose runs never report an end (the orchestrator died each time)."""

    def __init__(self) -> None:
        self.calls = 0

    def run(self, request: RunRequest) -> TriggerResult:
        self.calls += 1
        return TriggerResult("lost", error="the orchestrator ended without a result: killed")

    def stop(self) -> None:
        pass


def test_a_run_whose_end_stays_unknown_is_retried_then_failed(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks"
    tasks_table(tasks, [{"task_id": "x", "prompt": "add 1 and 2"}])
    lake = Lakehouse(tmp_path / "lake")
    source = open_source(f"delta:{tasks}", SourceOptions(lakehouse_root=lake.root))
    trigger = Losing()
    for attempt in (1, 2):
        ingestor = Ingestor(source, lake, trigger, max_attempts=2)
        [report] = ingestor.poll_once()
        assert (report.status, report.attempts) == ("pending", attempt)
        assert ingestor.watermark() is None  # not past a task that is not delivered
        [row] = lake.read("ingest_log")
        assert (row["status"], row["attempts"]) == ("triggered", attempt)
    [report] = Ingestor(source, lake, trigger, max_attempts=2).poll_once()
    assert report.status == "failed" and "gave up after 2 attempts" in report.error
    assert trigger.calls == 2
    [result] = lake.read("results")
    assert (result["task_id"], result["status"]) == ("x", "failed")
    assert Ingestor(source, lake, trigger).watermark() == "0"
    assert Ingestor(source, lake, trigger).poll_once() == [] and trigger.calls == 2
