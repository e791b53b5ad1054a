"""The whole-tree watchdog on plain host processes (no sandbox needed), the memory
setting's wiring from ``--memory-mb`` and ``RLM(memory_mb=...)`` to ``Limits``."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from rlm_engine.cli.ask import spec_from_args
from rlm_engine.cli.main import build_parser
from rlm_engine.engine.config import RLMConfig
from rlm_engine.errors import ConfigurationError
from rlm_engine.sandbox.cgroups import SandboxCgroup
from rlm_engine.sandbox.factory import LocalSandboxFactory
from rlm_engine.sandbox.limits import MIB, Limits
from rlm_engine.sandbox.watchdog import (
    Stop,
    Watchdog,
    anon_bytes,
    memory_message,
    pss_anon_bytes,
    tree_pids,
)
from rlm_engine.service.build import build_rlm
from rlm_engine.service.spec import CONFIG_KEYS
from rlm_engine.settings import Settings

# A parent that forks three children; each touches 40 MiB and waits to be killed.
TREE = """
import os, sys, time
done_r, done_w = os.pipe()
for _ in range(3):
    if os.fork() == 0:
        block = b"x" * (40 * 1024 * 1024)
        os.write(done_w, b"+")
        time.sleep(600)
        os._exit(0)
got = b""
while len(got) < 3:
    got += os.read(done_r, 3)
sys.stdout.write("ready\\n"); sys.stdout.flush()
time.sleep(600)
"""


def gone(pid: int) -> bool:
    """Killed: no longer there, or a zombie waiting for its new parent to reap it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0] in "ZX"
    except (OSError, IndexError):
        return True


def start_tree() -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", TREE], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    return proc


def test_tree_pids_and_memory_counts_cover_every_child() -> None:
    proc = start_tree()
    try:
        pids = tree_pids(proc.pid)
        assert pids[0] == proc.pid and len(pids) == 4
        children = pids[1:]
        # Each child's touched block is anonymous memory (the parent's is not there).
        assert all(anon_bytes(pid) >= 40 * MIB for pid in children)
        # Proportional counting never exceeds the plain one (shared pages split).
        assert sum(pss_anon_bytes(pid) for pid in pids) <= sum(anon_bytes(pid) for pid in pids)
    finally:
        proc.kill()
        proc.wait()


def test_over_the_budget_the_whole_tree_is_killed_with_a_memory_stop() -> None:
    proc = start_tree()
    stopped = threading.Event()
    stops: list[Stop] = []

    def on_stop(stop: Stop) -> None:
        stops.append(stop)
        stopped.set()

    watchdog = Watchdog(root_pid=proc.pid, memory_mb=100, on_stop=on_stop)
    children = tree_pids(proc.pid)[1:]
    watchdog.start()
    try:
        assert stopped.wait(60)
        assert proc.wait(60) == -9
        assert stops[0].kind == "memory" and watchdog.stop == stops[0]
        assert "more than 100 MiB in all" in stops[0].message
        assert watchdog.peak_bytes > 100 * MIB and watchdog.samples >= 0
        watchdog.join(60)  # the kills follow the stop report in the watchdog's thread
        deadline = time.monotonic() + 60
        while not all(gone(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert all(gone(pid) for pid in children)
    finally:
        watchdog.close()
        proc.kill()
        proc.wait()


def test_under_the_budget_nothing_happens_and_the_cost_is_measured() -> None:
    proc = start_tree()
    stops: list[Stop] = []
    watchdog = Watchdog(root_pid=proc.pid, memory_mb=1024, on_stop=stops.append)
    try:
        for _ in range(5):
            assert watchdog.check() is None
        assert 120 * MIB <= watchdog.peak_bytes < 1024 * MIB
    finally:
        proc.kill()
        proc.wait()
    assert not stops


def test_the_inode_limit_counts_files_of_a_mount(tmp_path: Path) -> None:
    used = os.statvfs(tmp_path).f_files - os.statvfs(tmp_path).f_ffree
    watchdog = Watchdog(
        root_pid=os.getpid(),
        memory_mb=0,
        on_stop=lambda stop: None,
        inode_limit=max(1, used - 1),
        mounts=[str(tmp_path)],
    )
    stop = watchdog.check()
    assert stop is not None and stop.kind == "inodes"
    assert stop.message.startswith("DiskLimitExceeded: ")


def test_the_memory_message_says_what_to_do() -> None:
    text = memory_message(2048, 2100 * MIB)
    assert text.startswith("MemoryLimitExceeded: the cell used more than 2048 MiB in all")
    assert "2100 MiB when it was stopped" in text and "chunks" in text
    assert "--memory-mb" in text and "when it was stopped" not in memory_message(64)


def test_limits_default_to_one_2048_mib_budget() -> None:
    limits = Limits()
    assert limits.memory_mb == 2048 and limits.address_space_bytes == 2048 * MIB
    assert Limits(memory_mb=256, address_space_mb=1024).to_arg().startswith(str(1024 * MIB))
    with pytest.raises(ValueError, match="tmp_inodes"):
        Limits(tmp_inodes=-1)


def test_memory_mb_setting_and_flag() -> None:
    assert RLMConfig().memory_mb == 2048
    with pytest.raises(ConfigurationError, match="memory_mb"):
        RLMConfig(memory_mb=10)
    args = build_parser().parse_args(
        ["ask", "q", "--model", "openai/gpt-5-mini", "--memory-mb", "512"]
    )
    spec = spec_from_args(args, Settings.from_env())
    assert spec.memory_mb == 512 and "memory_mb" in CONFIG_KEYS
    settings = Settings.from_env({"OPENAI_API_KEY": "not-used"})  # no request is made
    rlm = build_rlm(spec, settings, on_event=lambda event: None)
    assert rlm.config.memory_mb == 512
    factory = rlm._sandbox_factory  # pyright: ignore[reportPrivateUsage]
    assert isinstance(factory, LocalSandboxFactory)
    limits = factory._settings["limits"]  # pyright: ignore[reportPrivateUsage]
    assert isinstance(limits, Limits) and limits.memory_mb == 512


def test_a_cgroup_oom_kill_is_read_as_a_memory_stop(tmp_path: Path) -> None:
    group = SandboxCgroup(tmp_path, "one", Limits(memory_mb=256))
    assert (group.path / "memory.oom.group").read_text() == "1"
    assert not group.oom_killed()  # no memory.events yet
    (group.path / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 0\n")
    assert not group.oom_killed()
    (group.path / "memory.events").write_text("low 0\nhigh 0\nmax 9\noom 2\noom_kill 1\n")
    assert group.oom_killed()
