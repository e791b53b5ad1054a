"""One memory budget for the sandbox's whole process tree, and the process and /tmp
inode limits, against the real isolated sandbox (bubblewrap here and in CI)."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sandbox_fakes import FakeHost

from rlm_engine import RLM
from rlm_engine.events import CellFinished, SandboxRestarted
from rlm_engine.lm.scripted import ScriptedModel
from rlm_engine.sandbox.factory import sandbox_factory
from rlm_engine.sandbox.isolation import probe
from rlm_engine.sandbox.limits import Limits
from rlm_engine.sandbox.local import LocalSandbox

BUDGET_MB = 256
# A small budget keeps the test light; the per-process address space stays at its
# usual size, so only the whole-tree budget can stop the children below.
LIMITS = Limits(memory_mb=BUDGET_MB, address_space_mb=1024, nproc=32, disk_mb=64, tmp_inodes=2000)
MIB = 1024 * 1024

pytestmark = pytest.mark.skipif(
    probe().bwrap is None,
    reason="bubblewrap is not usable on this machine; CI installs it (.ci/run) so this "
    "suite runs there: " + "; ".join(probe().problems),
)

# Four children each allocate and touch 40% of the budget: every one is under the
# per-process RLIMIT_AS (the budget), together they are 160% of it.
FORK_FOUR = f"""
import os, time
pids = []
for _ in range(4):
    pid = os.fork()
    if pid == 0:
        block = b"x" * {BUDGET_MB * MIB * 4 // 10}
        time.sleep(120)
        os._exit(0)
    pids.append(pid)
for pid in pids:
    os.waitpid(pid, 0)
"""


def host_rss() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * 4096


@pytest.fixture
async def box(host: FakeHost, tmp_path: Path) -> AsyncIterator[LocalSandbox]:
    sandbox = LocalSandbox(host, workdir_parent=tmp_path, isolation="strict", limits=LIMITS)
    await sandbox.start()
    assert sandbox.isolation_level == "bubblewrap"
    try:
        yield sandbox
    finally:
        await sandbox.close()


async def test_forked_children_share_one_budget(box: LocalSandbox) -> None:
    before = host_rss()
    result = await box.execute(FORK_FOUR, timeout_s=300)
    assert result.status == "killed", result
    assert (result.error or "").startswith("MemoryLimitExceeded: ")
    assert f"more than {BUDGET_MB} MiB in all" in (result.error or "")
    assert "process the data in chunks" in (result.error or "").lower()
    assert not box.alive
    assert host_rss() <= before + 64 * MIB  # the host never held the sandbox's memory


async def test_a_fork_bomb_is_held_by_the_process_limit(box: LocalSandbox) -> None:
    code = textwrap.dedent(
        """
        import os, time
        made = 0
        try:
            while True:
                if os.fork() == 0:
                    time.sleep(30)
                    os._exit(0)
                made += 1
        except OSError as exc:
            print("stopped after", made, type(exc).__name__)
        """
    )
    result = await box.execute(code, timeout_s=120)
    assert result.status == "ok", result
    made = int(result.output.split("stopped after", 1)[1].split()[0])
    assert made < LIMITS.nproc
    assert "BlockingIOError" in result.output  # EAGAIN: the uid's process limit
    assert (await box.execute("print(1 + 1)", timeout_s=30)).output == "2\n"


async def test_an_uncaught_fork_bomb_gets_a_clear_error(box: LocalSandbox) -> None:
    code = "import os, time\nwhile True:\n    if os.fork() == 0:\n        time.sleep(30)\n"
    result = await box.execute(code, timeout_s=120)
    assert result.status == "error", result
    assert "BlockingIOError" in (result.error or "")
    assert f"at most {LIMITS.nproc} processes and threads" in (result.error or "")


async def test_threads_count_against_the_process_limit(box: LocalSandbox) -> None:
    code = textwrap.dedent(
        """
        import threading
        stop = threading.Event()
        started = 0
        try:
            for _ in range(1000):
                threading.Thread(target=stop.wait, daemon=True).start()
                started += 1
        except RuntimeError as exc:
            print("threads", started, exc)
        stop.set()
        """
    )
    result = await box.execute(code, timeout_s=120)
    assert result.status == "ok", result
    assert "can't start new thread" in result.output
    assert int(result.output.split()[1]) < LIMITS.nproc


async def test_many_empty_files_in_tmp_hit_the_inode_limit(box: LocalSandbox) -> None:
    code = "import os\nfor i in range(10**7):\n    open(f'/tmp/f{i}', 'w').close()"
    result = await box.execute(code, timeout_s=300)
    assert result.status == "killed", result
    assert (result.error or "").startswith("DiskLimitExceeded: ")
    assert f"more than {LIMITS.tmp_inodes:,} files and directories in /tmp" in (result.error or "")


def test_the_engine_restarts_a_fresh_repl_after_a_memory_stop(tmp_path: Path) -> None:
    replies = [
        f"```repl\nmarker = 1\n{FORK_FOUR}```",
        "```repl\nprint('marker' in globals(), len(context))\n```",
        "FINAL(done)",
    ]
    root = ScriptedModel(
        lambda m: replies[min(sum(x.role == "assistant" for x in m), len(replies) - 1)]
    )
    events: list[object] = []
    factory = sandbox_factory(isolation="strict", limits=LIMITS)
    with RLM(root, sandbox_factory=factory, cell_timeout_s=300, on_event=events.append) as rlm:
        result = rlm.run("question", "abcdef")
    assert result.answer == "done"
    cells = [e for e in events if isinstance(e, CellFinished)]
    assert cells[0].status == "killed"
    assert (cells[0].error or "").startswith("MemoryLimitExceeded: ")
    assert "[cell 1 output]\nFalse 6" in root.calls[2][-1].content
    restarts = [e for e in events if isinstance(e, SandboxRestarted)]
    assert restarts and restarts[0].reason.startswith("MemoryLimitExceeded: ")


async def test_the_budget_holds_under_the_unshare_fallback(host: FakeHost, tmp_path: Path) -> None:
    box = LocalSandbox(
        host, workdir_parent=tmp_path, limits=LIMITS, bwrap_path=str(tmp_path / "no-bwrap")
    )
    await box.start()
    try:
        assert box.isolation_level == "unshare"
        result = await box.execute(FORK_FOUR, timeout_s=300)
        assert result.status == "killed", result
        assert (result.error or "").startswith("MemoryLimitExceeded: ")
    finally:
        await box.close()
