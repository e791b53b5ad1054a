"""``spark`` in a Databricks executor's REPL: built by the prelude when Spark is importable
(its ``stop`` a no-op), absent otherwise, and never carried in the namespace snapshot."""

from __future__ import annotations

import asyncio
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from rlm_engine.jobs.executor_run import CellJob, run_cell
from rlm_engine.jobs.spark_session import FORGET, PRELUDE, spark_importable


class FakeSession:
    def __init__(self) -> None:
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True


def fake_pyspark(session: FakeSession) -> dict[str, types.ModuleType]:
    builder = types.SimpleNamespace(getOrCreate=lambda: session)
    sql = types.ModuleType("pyspark.sql")
    sql.SparkSession = types.SimpleNamespace(builder=builder)  # type: ignore[attr-defined]
    root = types.ModuleType("pyspark")
    root.sql = sql  # type: ignore[attr-defined]
    return {"pyspark": root, "pyspark.sql": sql}


def test_the_prelude_builds_spark_and_neutralises_stop(monkeypatch: pytest.MonkeyPatch) -> None:
    session = FakeSession()
    for name, module in fake_pyspark(session).items():
        monkeypatch.setitem(sys.modules, name, module)
    namespace: dict[str, Any] = {}
    exec(PRELUDE, namespace)
    assert namespace["spark"] is session
    namespace["spark"].stop()
    assert not session.stopped  # the cluster's session outlives the cell
    exec(FORGET, namespace)
    assert "spark" not in namespace and "_rlm_spark" not in namespace


def test_without_spark_the_repl_has_no_spark(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("pyspark", "pyspark.sql", "databricks.connect"):
        monkeypatch.setitem(sys.modules, name, None)  # not importable
    namespace: dict[str, Any] = {}
    exec(PRELUDE, namespace)
    assert "spark" not in namespace and "_rlm_spark" not in namespace


def test_a_cell_asked_for_spark_runs_and_carries_no_session(tmp_path: Path) -> None:
    job = CellJob(
        artifact_id="a1",
        code="x = 'spark' in dir()\nprint(x)",
        context={"kind": "none"},
        namespace_in=tmp_path / "namespace.in",
        namespace_out=tmp_path / "namespace.out",
        timeout_s=30,
        spark=True,
    )

    async def no_calls(method: str, params: Any) -> Any:
        raise AssertionError(method)

    run = asyncio.run(run_cell(job, no_calls))
    assert run.result.cell_status == "ok", run.result.error
    assert run.result.stdout.strip() == str(spark_importable())  # no pyspark here: False
    assert "spark" not in run.result.vars and "x" in run.result.vars
    assert "Not carried over" not in run.stderr
    assert (tmp_path / "namespace.out").is_file()
