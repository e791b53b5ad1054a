"""What the worker loads at its start: only the modules it needs, from cached bytecode."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from sandbox_fakes import FakeHost

from rlm_engine.sandbox.isolation import IsolationMode, probe
from rlm_engine.sandbox.launcher import (
    WORKER_MODULES,
    cache_worker_bytecode,
    worker_argv,
    worker_sources,
)
from rlm_engine.sandbox.local import LocalSandbox

LEVELS: list[IsolationMode] = ["none"] + (["strict"] if probe().bwrap is not None else [])

# Imported by the worker only when needed: dataclasses (and inspect behind it) belong to
# the host's Limits, ctypes to Landlock, traceback to a failed cell, site to -S.
NOT_AT_START = {"site", "dataclasses", "inspect", "ctypes", "traceback", "asyncio", "pydantic"}

PROBE = """\
import sys, builtins
print(json.dumps({
    "ours": sorted(m for m in sys.modules if m.split(".")[0] == "rlm_engine"),
    "loaded": sorted(sys.modules),
    "no_site": sys.flags.no_site,
    "builtins": [n for n in ("exit", "quit", "help") if hasattr(builtins, n)],
}))
"""


@pytest.mark.parametrize("isolation", LEVELS)
async def test_the_worker_starts_with_only_what_it_needs(
    host: FakeHost, tmp_path: Path, isolation: IsolationMode
) -> None:
    async with LocalSandbox(host, isolation=isolation, workdir_parent=tmp_path) as box:
        await box.execute("import json", timeout_s=10)
        result = await box.execute(PROBE, timeout_s=10)
    assert result.status == "ok", result.error
    seen = json.loads(result.output)
    assert set(seen["ours"]) <= set(WORKER_MODULES)
    assert "rlm_engine.sandbox.worker" in seen["ours"]
    assert NOT_AT_START.isdisjoint(seen["loaded"]), NOT_AT_START & set(seen["loaded"])
    assert seen["no_site"] == 1
    assert seen["builtins"] == ["exit", "quit", "help"]  # what site would have added


async def test_a_failing_cell_still_gets_its_traceback(host: FakeHost, tmp_path: Path) -> None:
    async with LocalSandbox(host, isolation="none", workdir_parent=tmp_path) as box:
        result = await box.execute("def f():\n    return 1 / 0\nf()", timeout_s=10)
        syntax = await box.execute("def (", timeout_s=10)
    assert result.status == "error" and result.error is not None
    assert "ZeroDivisionError" in result.error and "line 2, in f" in result.error
    assert syntax.error is not None and "SyntaxError" in syntax.error


def test_the_worker_gets_the_import_path_site_would_build() -> None:
    import sys

    argv = worker_argv(sys.executable, ["--fds", "3,4"])
    assert argv[1:4] == ["-I", "-S", "-c"] and argv[-2:] == ["--fds", "3,4"]
    assert str(Path(__file__).parents[2] / "src") in argv[4] or "site-packages" in argv[4]


def test_worker_bytecode_is_cached_for_every_worker_module() -> None:
    sources = worker_sources()
    assert len(sources) == len(WORKER_MODULES) and all(path.is_file() for path in sources)
    cache_worker_bytecode()
    for source in sources:
        cached = Path(importlib.util.cache_from_source(str(source)))
        if not cached.parent.exists() and not source.parent.stat().st_mode & 0o200:
            continue  # a read-only installation keeps the bytecode it shipped with
        assert cached.is_file(), cached
        assert cached.stat().st_mtime >= source.stat().st_mtime - 1
