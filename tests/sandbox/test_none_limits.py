"""Whole-sandbox limits without a pid namespace or a uid of the sandbox's own.

Under ``isolation="none"`` the worker runs below a launcher that is a child subreaper, so
a cell's orphan (a double fork with ``setsid``) is re-parented to it and stays in the tree
the watchdog counts: it counts against the memory budget and the process and thread
limit, is killed with the sandbox, and does not outlive ``close()``. The ``unshare`` and
bubblewrap levels keep their own answers (the pid namespace's init adopts orphans) and the
same limits; the ``unshare`` level is reached here by hiding bubblewrap.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from sandbox_fakes import FakeHost

from rlm_engine.sandbox.isolation import IsolationMode, probe
from rlm_engine.sandbox.limits import Limits
from rlm_engine.sandbox.local import LocalSandbox

# The cell forks, the child starts a new session and forks again, the child exits: the
# grandchild is an orphan outside the cell's process group. It sends its pid (the cell
# prints it; under ``none`` it is the host's), then runs ``work(report)``, which the cell
# defines first and which may send more lines to the cell with ``report``.
DOUBLE_FORK = """
import os, sys, time
ready_r, ready_w = os.pipe()
def report(line):
    os.write(ready_w, line.encode() + b"\\n")
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        report(str(os.getpid()))
        work(report)
        time.sleep(600)
        os._exit(0)
    os._exit(0)
os.wait()
lines = os.fdopen(ready_r)
print("orphan", lines.readline().strip())
"""
SLEEP = "def work(report):\n    pass\n"
ALLOCATE = "def work(report):\n    global block\n    block = bytearray(300 * 1024 * 1024)\n"
THREADS = """
import threading
def work(report):
    stop, started = threading.Event(), 0
    try:
        for _ in range(40):
            threading.Thread(target=stop.wait, daemon=True).start()
            started += 1
    except RuntimeError:
        pass
    report(f"threads {started}")
"""
# The cell waits to be stopped; the cell deadline only ends a watchdog that never acts.
WAIT = "import time\nfor _ in range(300):\n    time.sleep(0.1)\nprint('never stopped')"
# After THREADS: wait to be stopped only if the orphan started all its threads.
THREADS_WAIT = (
    "started = lines.readline().strip()\nprint(started)\n"
    "if started == 'threads 40':\n" + "".join(f"    {line}\n" for line in WAIT.splitlines())
)

# bubblewrap is hidden by pointing the probe at a path that does not exist.
HIDDEN_BWRAP = "/nonexistent/bwrap"
LEVELS: list[tuple[IsolationMode, str | None]] = [("none", None)]
if probe(HIDDEN_BWRAP).unshare is not None:
    LEVELS.append(("strict", HIDDEN_BWRAP))
if probe().bwrap is not None:
    LEVELS.append(("strict", None))


def gone(pid: int, deadline_s: float = 10.0) -> bool:
    """Whether ``pid`` ends (gone, or a zombie) before the deadline."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][:1]
        except (OSError, IndexError):
            return True
        if state in "ZX":
            return True
        time.sleep(0.02)
    return False


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[1])


async def start_orphan(box: LocalSandbox, work: str) -> int:
    result = await box.execute(work + DOUBLE_FORK, timeout_s=20)
    assert result.status == "ok", result.error
    return int(result.output.split()[1])


async def test_an_orphan_is_adopted_by_the_launcher_and_dies_with_close(
    host: FakeHost, tmp_path: Path
) -> None:
    box = LocalSandbox(host, isolation="none", workdir_parent=tmp_path)
    await box.start()
    try:
        worker = box.pid
        assert worker is not None
        orphan = await start_orphan(box, SLEEP)
        launcher = parent_of(worker)
        assert parent_of(orphan) == launcher  # not the host's init
        assert os.getpgid(orphan) != os.getpgid(worker)  # it left the cell's group
    finally:
        await box.close()
    assert gone(orphan)
    assert gone(launcher)


async def test_an_orphan_that_allocates_counts_and_is_killed(
    host: FakeHost, tmp_path: Path
) -> None:
    limits = Limits(memory_mb=128, address_space_mb=1024)
    async with LocalSandbox(host, isolation="none", limits=limits, workdir_parent=tmp_path) as box:
        orphan = await start_orphan(box, ALLOCATE)
        result = await box.execute(WAIT, timeout_s=30)
        assert not box.alive
    assert result.status == "killed"
    assert result.error is not None and result.error.startswith("MemoryLimitExceeded")
    assert "more than 128 MiB in all" in result.error
    assert gone(orphan)


@pytest.mark.parametrize(("isolation", "bwrap"), LEVELS)
async def test_an_orphan_past_the_thread_limit_stops_the_sandbox(
    host: FakeHost, tmp_path: Path, isolation: IsolationMode, bwrap: str | None
) -> None:
    limits = Limits(nproc=24)
    box = LocalSandbox(
        host, isolation=isolation, bwrap_path=bwrap, limits=limits, workdir_parent=tmp_path
    )
    async with box:
        result = await box.execute(THREADS + DOUBLE_FORK + THREADS_WAIT, timeout_s=30)
        dedicated = box.worker_uid is not None
        alive = box.alive
    if dedicated:
        # A uid of the sandbox's own: RLIMIT_NPROC refuses the orphan's thread past the
        # limit (the worker's three and the orphan's own count too) before the watchdog.
        assert result.status == "ok", result.error
        started = int(result.output.split()[-1])
        assert 0 < started <= 24 - 4 and alive
    else:
        assert result.error is not None and "ProcessLimit" in result.error, result
        # No kernel limit applies: the watchdog counts the tree and kills it.
        assert result.status == "killed" and not alive
        assert result.error.startswith("ProcessLimit: the cell ran more than 24 processes")


async def test_threads_of_the_cell_itself_count(host: FakeHost, tmp_path: Path) -> None:
    cell = (
        "import threading, time\nstop = threading.Event()\n"
        "for _ in range(40):\n    threading.Thread(target=stop.wait, daemon=True).start()\n"
    )
    limits = Limits(nproc=16)
    async with LocalSandbox(host, isolation="none", limits=limits, workdir_parent=tmp_path) as box:
        result = await box.execute(cell + WAIT, timeout_s=30)
    assert result.status == "killed"
    assert result.error is not None
    assert result.error.startswith("ProcessLimit: the cell ran more than 16 processes")


FORKS = """
import os, time
for i in range(60):
    if os.fork() == 0:
        with open(f"child-{i}.pid", "w") as handle:
            handle.write(str(os.getpid()))
        time.sleep(600)
        os._exit(0)
"""


async def test_processes_past_the_limit_are_all_killed(host: FakeHost, tmp_path: Path) -> None:
    limits = Limits(nproc=24)
    async with LocalSandbox(host, isolation="none", limits=limits, workdir_parent=tmp_path) as box:
        result = await box.execute(FORKS + WAIT, timeout_s=30)
        assert box.workdir is not None
        children = [int(path.read_text() or 0) for path in box.workdir.glob("child-*.pid")]
    assert result.status == "killed"
    assert result.error is not None and result.error.startswith("ProcessLimit:")
    assert children  # some wrote their pid before the stop; none of those survives it
    assert all(gone(pid) for pid in children if pid)


async def test_under_the_limit_the_launcher_changes_nothing_a_cell_sees(
    host: FakeHost, tmp_path: Path
) -> None:
    probe_cell = (
        "import os, sys\n"
        "print(os.getpgid(0) == os.getpid(), 'ctypes' in sys.modules, x if 'x' in dir() else 0)"
    )
    async with LocalSandbox(host, isolation="none", workdir_parent=tmp_path) as box:
        first = await box.execute("x = 41\n" + probe_cell, timeout_s=10)
        interrupted = await box.execute("x += 1\nimport time\ntime.sleep(60)", timeout_s=0.5)
        after = await box.execute(probe_cell, timeout_s=10)
        assert box.alive
    # The worker leads its own process group; the launcher's ctypes is not in its modules.
    assert first.output == "True False 41\n"
    assert interrupted.status == "timeout"  # the soft interrupt reaches the worker only
    assert after.output == "True False 42\n"


@pytest.mark.parametrize(
    ("cell", "words"),
    [
        ("import os\nos._exit(3)", "exited on its own with code 3"),
        ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", "killed by signal SIGKILL"),
    ],
)
async def test_the_workers_own_exit_is_reported_through_the_launcher(
    host: FakeHost, tmp_path: Path, cell: str, words: str
) -> None:
    async with LocalSandbox(host, isolation="none", workdir_parent=tmp_path) as box:
        result = await box.execute(cell, timeout_s=10)
    assert result.status == "killed"
    # The launcher exits as the worker did, so the host names the same code or signal.
    assert result.error is not None and words in result.error, result.error
