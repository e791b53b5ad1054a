"""Isolation settings, the factory, the warm pool, large contexts and the workspace."""

from __future__ import annotations

import resource
from pathlib import Path

import pytest
from sandbox_fakes import FakeHost

from rlm_engine.errors import ConfigurationError
from rlm_engine.sandbox.cgroups import SandboxCgroup, usable_root
from rlm_engine.sandbox.factory import LocalSandboxFactory, check_isolation, sandbox_factory
from rlm_engine.sandbox.isolation import IsolationUnavailable, choose_level, probe
from rlm_engine.sandbox.launcher import _minimal_dirs  # pyright: ignore[reportPrivateUsage]
from rlm_engine.sandbox.limits import Limits
from rlm_engine.sandbox.local import LocalSandbox
from rlm_engine.sandbox.pool import PooledSandbox
from rlm_engine.sandbox.uid_slots import UidAllocator

BWRAP_WORKS = probe().bwrap is not None
needs_bwrap = pytest.mark.skipif(
    not BWRAP_WORKS, reason="bubblewrap is not usable here; CI installs it (.ci/run)"
)


def test_strict_refuses_when_isolation_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    caps = probe("/nonexistent/bwrap")
    assert caps.bwrap is None
    # Simulate a machine without unshare either.
    monkeypatch.setattr(
        "rlm_engine.sandbox.isolation.probe",
        lambda bwrap_path=None: caps.__class__(
            caps.platform, caps.is_root, None, None, None, 0, ("bubblewrap not found",)
        ),
    )
    from rlm_engine.sandbox import isolation

    missing = isolation.probe("/nonexistent/bwrap")
    with pytest.raises(IsolationUnavailable, match="apt-get install -y bubblewrap") as info:
        choose_level("strict", missing)
    assert "bubblewrap not found" in info.value.missing
    with pytest.warns(RuntimeWarning, match="NO OS ISOLATION"):
        assert choose_level("auto", missing) == "none"
    assert choose_level("none", missing) == "none"


async def test_strict_sandbox_refuses_to_start_without_bwrap(
    host: FakeHost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("rlm_engine.sandbox.isolation.shutil.which", lambda *a, **k: None)
    probe.cache_clear()
    try:
        box = LocalSandbox(
            host, workdir_parent=tmp_path, isolation="strict", bwrap_path="/no/bwrap"
        )
        with pytest.raises(IsolationUnavailable):
            await box.start()
        assert list(tmp_path.iterdir()) == []
        with pytest.raises(IsolationUnavailable):
            sandbox_factory(isolation="strict", bwrap_path="/no/bwrap")
    finally:
        probe.cache_clear()


def test_factory_settings_are_checked() -> None:
    with pytest.raises(ConfigurationError, match="unknown sandbox backend"):
        sandbox_factory("kubernetes")
    with pytest.raises(ConfigurationError):
        sandbox_factory(isolation="paranoid")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        sandbox_factory(pool_size=-1)
    with pytest.raises(ValueError):
        Limits(memory_mb=-1)
    assert check_isolation("none") == "none"


@needs_bwrap
async def test_auto_isolates_a_plain_local_sandbox(host: FakeHost, tmp_path: Path) -> None:
    async with LocalSandbox(host, workdir_parent=tmp_path) as box:
        assert box.isolation_level == "bubblewrap"
        result = await box.execute("import os\nprint(os.getuid())", timeout_s=10)
        assert result.output.strip() != "0"
        assert box.startup_s is not None and box.startup_s < 5


async def test_none_runs_a_plain_process_with_rlimits(host: FakeHost, tmp_path: Path) -> None:
    limits = Limits(memory_mb=2048, nofile=100, fsize_mb=8)
    async with LocalSandbox(host, workdir_parent=tmp_path, isolation="none", limits=limits) as box:
        assert box.isolation_level == "none" and box.worker_uid is None
        code = (
            "import resource as r\n"
            "print([r.getrlimit(x) for x in (r.RLIMIT_AS, r.RLIMIT_NOFILE, r.RLIMIT_FSIZE, "
            "r.RLIMIT_CORE)])"
        )
        out = (await box.execute(code, timeout_s=10)).output
        mib = 1024 * 1024
        assert f"({2048 * mib}, {2048 * mib})" in out and "(100, 100)" in out
        assert f"({8 * mib}, {8 * mib})" in out and "(0, 0)" in out
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] != 100  # the host is untouched


@needs_bwrap
async def test_factory_with_warm_pool_hands_out_started_workers(tmp_path: Path) -> None:
    factory = sandbox_factory(pool_size=2, workdir_parent=tmp_path)
    assert isinstance(factory, LocalSandboxFactory) and factory.pool is not None
    await factory.pool.fill()
    first, second = FakeHost(), FakeHost()
    box_a = factory(first, ("lookup",))
    box_b = factory(second, ())
    assert isinstance(box_a, PooledSandbox)
    await box_a.start()
    await box_b.start()
    assert factory.pool.hits == 2 and factory.pool.misses == 0
    meta = await box_a.load_context("attached on acquisition")
    assert meta.total_chars == len("attached on acquisition")
    out = await box_a.execute("print(context, llm_query('q'), lookup(1)['tool'])", timeout_s=10)
    assert out.output == "attached on acquisition answer to q lookup\n"
    assert [c[0] for c in first.calls] == ["llm_query", "tool"] and second.calls == []
    other = await box_b.execute("print('context' in dir(), context)", timeout_s=10)
    assert other.output == "True None\n"  # nothing leaks between owners
    await box_a.close()
    await box_b.close()
    await factory.pool.fill()  # refilled in the background
    assert len(factory.pool._ready) == 2  # pyright: ignore[reportPrivateUsage]
    await factory.close()


@needs_bwrap
async def test_large_text_context_is_memory_mapped(host: FakeHost, tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    line = "lorem ipsum dolor sit amet " * 3 + "\n"
    with big.open("w") as handle:
        for index in range(40_000):
            handle.write(f"{index:06d} {line}" if index != 31_337 else "needle in the haystack\n")
    size = big.stat().st_size
    async with LocalSandbox(host, workdir_parent=tmp_path, lazy_context_bytes=1_000_000) as box:
        meta = await box.load_context(big)
        assert meta.type == "LargeText" and meta.total_chars == size
        code = (
            "print(type(context).__name__, len(context), context[:6], 'needle' in context)\n"
            "print(context.grep('needle'))\n"
            "print(sum(1 for _ in context.lines()), len(list(context.chunks(100_000))))\n"
            "print(context.count('lorem'))\n"
            "print(open('/proc/self/maps').read().count('big.txt') > 0)"
        )
        out = (await box.execute(code, timeout_s=20)).output.splitlines()
        assert out[0] == f"LargeText {size} 000000 True"
        assert "needle in the haystack" in out[1]
        assert out[2].startswith("40000 ")
        assert out[3] == "119997"  # three per line, one line replaced
        assert out[4] == "True"  # mapped, not read through the pipe
        write = "open(context.path, 'a').write('x')"
        assert (await box.execute(write, timeout_s=10)).status == "error"  # read-only bind


@needs_bwrap
async def test_workspace_persists_between_sandboxes_and_is_confined(
    host: FakeHost, tmp_path: Path
) -> None:
    workspace = tmp_path / "session-ws"
    async with LocalSandbox(host, workdir_parent=tmp_path, workspace=workspace) as box:
        out = await box.execute(
            "workspace.write('notes/a.txt', 'remember me')\n"
            "print(workspace.root, workspace.list())\n"
            "try:\n    workspace.write('../escape.txt', 'x')\nexcept ValueError as e:\n"
            "    print('refused')\n",
            timeout_s=10,
        )
        assert out.output == "/data ['notes/a.txt']\nrefused\n"
    assert (workspace / "notes" / "a.txt").read_text() == "remember me"
    assert not (tmp_path / "escape.txt").exists()
    async with LocalSandbox(host, workdir_parent=tmp_path, workspace=workspace) as again:
        result = await again.execute("print(workspace.read('notes/a.txt'))", timeout_s=10)
        assert result.output == "remember me\n"


def test_interpreter_binds_are_minimal(tmp_path: Path) -> None:
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    dirs = _minimal_dirs(["/", "/usr/lib", str(tmp_path / "a"), str(nested), "", "/no/such"])
    assert dirs == (str(tmp_path / "a"),)


def test_uid_slots_are_exclusive(tmp_path: Path) -> None:
    allocator = UidAllocator(first=61000, count=2, lock_dir=tmp_path)
    other = UidAllocator(first=61000, count=2, lock_dir=tmp_path)
    a = allocator.acquire()
    b = other.acquire()
    assert {a.uid, b.uid} == {61000, 61001}
    with pytest.raises(OSError):
        allocator.acquire()
    a.release()
    assert other.acquire().uid == a.uid


def test_cgroup_v2_limits_are_written(tmp_path: Path) -> None:
    root = tmp_path / "cg"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (root / "cgroup.subtree_control").write_text("")
    (root / "rlm-sandbox").mkdir()
    (root / "rlm-sandbox" / "cgroup.subtree_control").write_text("")
    parent = usable_root(root)
    assert parent == root / "rlm-sandbox"
    group = SandboxCgroup(parent, "one", Limits(nproc=10, memory_mb=256, cpu_quota=0.5))
    assert (group.path / "pids.max").read_text() == "10"
    assert (group.path / "memory.max").read_text() == str(256 * 1024 * 1024)
    assert (group.path / "cpu.max").read_text() == "50000 100000"
    assert usable_root(tmp_path / "missing") is None
