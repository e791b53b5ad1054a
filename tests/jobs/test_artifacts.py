"""The artifact registry on a real Delta table on disk."""

from __future__ import annotations

import gc
import json
from pathlib import Path
from typing import Any

import duckdb
import pytest
from deltalake import DeltaTable

from rlm_engine.errors import ConfigurationError
from rlm_engine.integrations.delta_lake import Lakehouse
from rlm_engine.jobs.artifacts import Artifact, ArtifactNotFound, ArtifactRegistry


@pytest.fixture
def registry(tmp_path: Path) -> ArtifactRegistry:
    return ArtifactRegistry(Lakehouse(tmp_path / "lake"))


def make(registry: ArtifactRegistry, artifact_id: str = "a1", code: str = "x = 1") -> Artifact:
    return registry.create(
        artifact_id,
        session_id="s1",
        invocation_id="run1",
        iteration=1,
        code=code,
        metadata={"parent": None},
    )


def test_create_writes_the_code_then_a_pending_row(registry: ArtifactRegistry) -> None:
    made = make(registry)
    assert made.status == "pending"
    assert registry.dir_for("a1") == registry.files_root / "s1" / "a1"
    assert registry.files_root == Path(registry.lake.root) / "artifacts"
    assert made.code_artifact_key == "s1/a1/code.py"
    assert registry.path(made.code_artifact_key).read_text() == "x = 1"
    got = registry.get("a1")
    assert got is not None
    assert (got.session_id, got.invocation_id, got.iteration, got.artifact_type) == (
        "s1",
        "run1",
        1,
        "cell",
    )
    assert got.metadata == {"parent": None}
    assert got.created_time > 0 and got.consumed_time is None


def test_create_is_idempotent_by_id(registry: ArtifactRegistry) -> None:
    make(registry)
    registry.mark("a1", "executing", metadata={"pid": 1})
    again = make(registry, code="something else")
    assert again.status == "executing"
    assert registry.path("s1/a1/code.py").read_text() == "x = 1"
    assert len(registry.lake.read("artifact_registry")) == 1


def test_status_moves_forward_only(registry: ArtifactRegistry) -> None:
    make(registry)
    registry.mark("a1", "executing", metadata={"pid": 123, "host": "h"})
    done = registry.mark("a1", "completed", stdout_artifact_key="s1/a1/stdout.txt")
    assert done.status == "completed"
    assert done.metadata == {"parent": None, "pid": 123, "host": "h"}
    back = registry.mark("a1", "executing")
    assert back.status == "completed"
    registry.mark("a1", "failed")
    stored = registry.get("a1")
    assert stored is not None and stored.status == "completed"
    assert stored.stdout_artifact_key == "s1/a1/stdout.txt"


def test_a_finished_row_takes_its_consumed_time(registry: ArtifactRegistry) -> None:
    make(registry)
    registry.mark("a1", "failed")
    registry.mark("a1", "failed", consumed_time=1_700_000_000.5)
    stored = registry.get("a1")
    assert stored is not None and stored.consumed_time == pytest.approx(1_700_000_000.5)


def test_rows_are_readable_by_duckdb(registry: ArtifactRegistry) -> None:
    make(registry, "a1")
    make(registry, "a2", code="y = 2")
    registry.mark("a2", "completed", metadata={"cell_status": "ok"})
    table: Any = DeltaTable(registry.lake.uri("artifact_registry"))
    dataset: Any = table.to_pyarrow_dataset()
    con = duckdb.connect()
    con.register("registry", dataset)
    rows = con.sql("SELECT artifact_id, status, metadata_json FROM registry ORDER BY 1").fetchall()
    con.close()
    del table, dataset
    gc.collect()  # a dataset alive at exit aborts the interpreter (see docs/decisions.md)
    assert [(r[0], r[1]) for r in rows] == [("a1", "pending"), ("a2", "completed")]
    assert json.loads(rows[1][2])["cell_status"] == "ok"


def test_bad_input_is_a_typed_error(registry: ArtifactRegistry) -> None:
    with pytest.raises(ArtifactNotFound):
        registry.mark("nope", "completed")
    with pytest.raises(ArtifactNotFound):
        registry.dir_for("nope")
    make(registry)
    with pytest.raises(ConfigurationError, match="no column"):
        registry.mark("a1", "completed", colour="red")
    with pytest.raises(ConfigurationError, match="unknown artifact status"):
        registry.mark("a1", "done")  # pyright: ignore[reportArgumentType]
    with pytest.raises(ConfigurationError, match="artifact id"):
        make(registry, "../escape")


def test_an_object_store_root_needs_a_local_files_root(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as caught:
        ArtifactRegistry(Lakehouse("s3://bucket/lake"))
    assert caught.value.hint is not None and "files_root" in caught.value.hint
    assert (
        ArtifactRegistry(Lakehouse("s3://b/l"), tmp_path / "files").files_root == tmp_path / "files"
    )
