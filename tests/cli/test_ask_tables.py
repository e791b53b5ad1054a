"""`rlm ask` over table contexts (a Parquet directory, a Delta table, CSV, JSONL) under
the default isolation and ``--isolation strict``: the model filters with `sql()` and
fans a filtered value out to a sub-call; no root request ever carries a row value."""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from cli_support import cli, cli_env, is_root, turn
from deltalake import write_deltalake

from rlm_engine.sim.config import SimConfig
from rlm_engine.sim.policies import CallablePolicy, message_text
from rlm_engine.sim.runner import SimServerThread
from rlm_engine.store.factory import open_store

# pyarrow ships no type stubs.
pa: Any = importlib.import_module("pyarrow")
pacsv: Any = importlib.import_module("pyarrow.csv")
pq: Any = importlib.import_module("pyarrow.parquet")


SECRET = "NARWHAL-90417"
"""A cell value written only in the data: no root request may ever hold it."""
ORDERS = pa.table(
    {
        "order_id": pa.array(range(1, 9), pa.int64()),
        "region": ["eu", "us", "eu", "apac", "us", "eu", "apac", "us"],
        "amount": [10.5, 20.0, 30.0, 4.0, 50.0, 6.5, 7.0, 80.0],
        "note": ["ok", "ok", "late", SECRET, "ok", "ok", "late", "ok"],
    }
)
CELL = (
    "```repl\n"
    "totals = sql('select region, sum(amount) as total from context "
    "group by region order by total desc')\n"
    "note = sql('select note from context where order_id = 4')[0]['note']\n"
    "verdict = llm_query('Is this note a flagged code? ' + note)\n"
    "answer = f\"{totals[0]['region']}:{totals[0]['total']:g}:{verdict}\"\n"
    "print(len(totals), 'groups')\n"
    "```"
)


class TablePolicy:
    """Root: the SQL cell, then FINAL. Sub-calls: ``flagged`` when handed the secret."""

    def __init__(self) -> None:
        self.root_requests: list[list[dict[str, Any]]] = []
        self.sub_prompts: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, messages: list[dict[str, Any]]) -> str:
        with self._lock:
            if is_root(messages):
                self.root_requests.append(messages)
                return [CELL, "```repl\nFINAL(answer)\n```"][min(turn(messages), 1)]
            prompt = message_text(messages[-1])
            self.sub_prompts.append(prompt)
            return "flagged" if SECRET in prompt else "clean"


def _expected() -> str:
    grouped = ORDERS.group_by("region").aggregate([("amount", "sum")])
    totals = dict(
        zip(grouped["region"].to_pylist(), grouped["amount_sum"].to_pylist(), strict=True)
    )
    region, total = max(totals.items(), key=lambda item: item[1])
    return f"{region}:{total:g}:flagged"


def _write(kind: str, root: Path) -> Path:
    if kind == "parquet-dir":
        folder = root / "orders"
        folder.mkdir()
        pq.write_table(ORDERS.slice(0, 5), folder / "part-00000.parquet")
        pq.write_table(ORDERS.slice(5), folder / "part-00001.parquet")
        return folder
    if kind == "delta":
        path = root / "orders_delta"
        write_deltalake(str(path), ORDERS.slice(0, 4), partition_by=["region"])
        write_deltalake(str(path), ORDERS.slice(4), mode="append")
        return path
    if kind == "csv":
        path = root / "orders.csv"
        pacsv.write_csv(ORDERS, path)
        return path
    path = root / "orders.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in ORDERS.to_pylist()))
    return path


@pytest.mark.parametrize(
    ("kind", "isolation"),
    [
        ("parquet-dir", "auto"),
        ("parquet-dir", "strict"),
        ("delta", "strict"),  # the default isolation: the resume test below
        ("csv", "strict"),
        ("jsonl", "auto"),
    ],
)
def test_ask_answers_from_sql_without_rows_in_the_root(
    tmp_path: Path, kind: str, isolation: str
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    context = _write(kind, data)
    policy = TablePolicy()
    ask = ["ask", "Which region sells most?", "--context", str(context), "--model", "openai/m"]
    with SimServerThread(SimConfig(), CallablePolicy(policy)) as sim:
        proc = cli([*ask, "--isolation", isolation, "--json"], cli_env(tmp_path, sim.url))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["answer"] == _expected()
    # The sub-call got the value the SQL filtered out; the root never saw a row.
    assert any(SECRET in prompt for prompt in policy.sub_prompts)
    assert len(policy.root_requests) == 2
    for request in policy.root_requests:
        assert SECRET not in json.dumps(request)
    first = message_text(policy.root_requests[0][1])
    for column in ORDERS.column_names:
        assert column in first
    assert "8 rows" in first


def test_an_unreadable_table_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "orders.parquet"
    bad.write_bytes(b"PAR1 not really parquet")
    proc = cli(
        ["ask", "q", "--context", str(bad), "--model", "openai/m"],
        cli_env(tmp_path, "http://127.0.0.1:9"),
    )
    assert proc.returncode == 2, proc.stderr
    assert "is not a readable parquet table" in proc.stderr
    assert "rlm: hint:" in proc.stderr and "Traceback" not in proc.stderr


def test_a_directory_mixing_tables_and_text_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    pq.write_table(ORDERS, folder / "orders.parquet")
    (folder / "notes.txt").write_text("about the orders")
    proc = cli(
        ["ask", "q", "--context", str(folder), "--model", "openai/m"],
        cli_env(tmp_path, "http://127.0.0.1:9"),
    )
    assert proc.returncode == 2, proc.stderr
    assert "mixes table files with other files: notes.txt" in proc.stderr
    assert "rlm: hint:" in proc.stderr and "Traceback" not in proc.stderr


class KillOnSubCall(TablePolicy):
    """`TablePolicy` that SIGKILLs the CLI when the first sub-call arrives."""

    def __init__(self) -> None:
        super().__init__()
        self.pid: int | None = None
        self.killed = threading.Event()

    def __call__(self, messages: list[dict[str, Any]]) -> str:
        if not is_root(messages) and self.pid is not None and not self.killed.is_set():
            self.killed.set()
            os.kill(self.pid, signal.SIGKILL)
        return super().__call__(messages)


def test_a_resume_reads_the_delta_version_the_run_started_with(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    context = _write("delta", data)
    policy = KillOnSubCall()
    ask = ["ask", "Which region sells most?", "--context", str(context), "--model", "openai/m"]
    with SimServerThread(SimConfig(), CallablePolicy(policy)) as sim:
        env = cli_env(tmp_path, sim.url)
        proc = subprocess.Popen(
            [sys.executable, "-m", "rlm_engine.cli.main", *ask, "--json"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        policy.pid = proc.pid
        assert proc.wait(90) == -signal.SIGKILL
        # The table moves on: a new version in which another region leads by far.
        more = pa.table(
            {
                "order_id": pa.array([9], pa.int64()),
                "region": ["apac"],
                "amount": [10_000.0],
                "note": ["ok"],
            }
        )
        write_deltalake(str(context), more, mode="append")
        store = open_store(None, tmp_path / "home")
        try:
            run_id = store.list_runs(limit=1)[0].run_id
        finally:
            store.close()
        resumed = cli(["runs", "resume", run_id, "--json"], env)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["answer"] == _expected()
    for request in policy.root_requests:
        assert SECRET not in json.dumps(request)
