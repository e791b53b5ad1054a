"""Files in a Unity Catalog volume through the Files API of the double, with the real SDK."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from databricks_double import DatabricksDouble

from rlm_engine.errors import ConfigurationError
from rlm_engine.integrations.databricks.volumes import VolumeFiles
from rlm_engine.integrations.databricks.workspace import WorkspaceError, workspace_client

ROOT = "/Volumes/main/rlm/artifacts"


@pytest.fixture
def double(tmp_path: Path) -> Iterator[DatabricksDouble]:
    with DatabricksDouble(tmp_path / "ws") as d:
        yield d


@pytest.fixture
def files(double: DatabricksDouble) -> VolumeFiles:
    return VolumeFiles(workspace_client(host=double.url, token=double.token), ROOT)


def test_bytes_and_text_round_trip_through_the_files_api(
    double: DatabricksDouble, files: VolumeFiles
) -> None:
    path = files.write_text("s1/a1/code.py", "print('héllo')\n")
    files.write_bytes("s1/a1/blob.bin", bytes(range(256)))

    assert path == f"{ROOT}/s1/a1/code.py"
    assert files.read_text("s1/a1/code.py") == "print('héllo')\n"
    assert files.read_bytes("s1/a1/blob.bin") == bytes(range(256))
    on_disk = double.files_root / "main" / "rlm" / "artifacts" / "s1" / "a1" / "code.py"
    assert on_disk.read_text() == "print('héllo')\n"
    assert ("PUT", f"/api/2.0/fs/files{ROOT}/s1/a1/code.py") in [
        (m, p.split("?")[0]) for m, p in double.requests
    ]


def test_a_write_replaces_the_file(files: VolumeFiles) -> None:
    files.write_text("result.json", '{"v": 1}')
    files.write_text("result.json", '{"v": 2}')
    assert files.read_text("result.json") == '{"v": 2}'


def test_exists_tells_files_apart_from_missing_ones(files: VolumeFiles) -> None:
    assert not files.exists("s1/nothing.json")
    files.write_bytes("s1/here.json", b"{}")
    assert files.exists("s1/here.json")


def test_reading_a_missing_file_is_a_typed_error(files: VolumeFiles) -> None:
    with pytest.raises(WorkspaceError, match="reading /Volumes/main/rlm/artifacts/gone.txt"):
        files.read_bytes("gone.txt")


@pytest.mark.parametrize("rel", ["../other/x", "/Volumes/main/rlm/x", "", "a/../../b"])
def test_names_that_leave_the_root_are_refused(files: VolumeFiles, rel: str) -> None:
    with pytest.raises(ConfigurationError, match="relative path"):
        files.write_text(rel, "x")


@pytest.mark.parametrize("root", ["/tmp/artifacts", "/Volumes/main", "dbfs:/x"])
def test_a_root_outside_a_volume_is_refused(double: DatabricksDouble, root: str) -> None:
    w = workspace_client(host=double.url, token=double.token)
    with pytest.raises(ConfigurationError, match="not a Unity Catalog volume path"):
        VolumeFiles(w, root)
