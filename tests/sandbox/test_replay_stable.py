"""Randomness and precise clocks inside a real worker replay the same for a journaled cell."""

from __future__ import annotations

import ast
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sandbox_fakes import FakeHost

from rlm_engine.sandbox import cell_clock
from rlm_engine.sandbox.base import CellClock
from rlm_engine.sandbox.host_protocol import ProtocolViolation, parse_clock_reads
from rlm_engine.sandbox.local import LocalSandbox
from rlm_engine.sandbox.worker_monotonic import MAX_READS

START = 1_700_000_000.0

RANDOM_CELL = (
    "import os, uuid, secrets, random\n"
    "print([str(uuid.uuid4()), str(uuid.uuid1()), os.urandom(8).hex(),\n"
    "       secrets.token_hex(8), secrets.token_urlsafe(8), secrets.token_bytes(4).hex(),\n"
    "       secrets.randbelow(10**9), secrets.choice('abcdefghijklmnop' * 4),\n"
    "       random.SystemRandom().random(), random.Random().random()])"
)

TIMING_CELL = (
    "import time\n"
    "a = time.monotonic(); time.sleep(0.05); b = time.perf_counter()\n"
    "c = time.monotonic_ns(); d = time.perf_counter_ns()\n"
    "print([a, b, c, d, b - a >= 0.05])"
)


@pytest.fixture
async def fresh(host: FakeHost, tmp_path: Path) -> AsyncIterator[LocalSandbox]:
    """A second REPL for replays: a replay runs in a fresh one, as on resume (within one
    process the precise clock never goes back, so a cell re-run there reads later times)."""
    async with LocalSandbox(host, workdir_parent=tmp_path) as box:
        yield box


async def _run(box: LocalSandbox, code: str, clock: CellClock) -> tuple[str, tuple[int, ...]]:
    result = await box.execute_at(code, clock=clock, timeout_s=30)
    assert result.status == "ok", result.error
    return result.output, result.clock_reads


async def test_the_same_cell_and_seed_draw_the_same_bytes(
    sandbox: LocalSandbox, fresh: LocalSandbox
) -> None:
    first, _ = await _run(sandbox, RANDOM_CELL, CellClock(START, "run-1 r/1/c1"))
    other, _ = await _run(sandbox, RANDOM_CELL, CellClock(START, "run-1 r/1/c2"))
    again, _ = await _run(fresh, RANDOM_CELL, CellClock(START, "run-1 r/1/c1"))
    assert first == again
    drawn, other_drawn = ast.literal_eval(first), ast.literal_eval(other)
    assert all(a != b for a, b in zip(drawn, other_drawn, strict=True))
    assert drawn[0][14] == "4" and drawn[1][14] == "1"  # still a version 4 and a version 1


async def test_between_and_outside_journaled_cells_entropy_is_real(
    sandbox: LocalSandbox,
) -> None:
    await _run(sandbox, "import os\nos.urandom(4)", CellClock(START, "seed"))
    cell = "import os, uuid\nprint(os.urandom(16).hex(), uuid.uuid4())"
    plain = [(await sandbox.execute(cell, timeout_s=30)).output for _ in range(2)]
    assert plain[0] != plain[1]
    # A cell with a wall clock and no seed (an older host) keeps the real entropy too.
    unseeded = [(await _run(sandbox, cell, CellClock(START)))[0] for _ in range(2)]
    assert unseeded[0] != unseeded[1]


async def test_precise_clocks_are_real_then_replayed_from_the_recorded_reads(
    sandbox: LocalSandbox, fresh: LocalSandbox
) -> None:
    live, reads = await _run(sandbox, TIMING_CELL, CellClock(START, "s"))
    values = ast.literal_eval(live)
    assert values[4] is True  # the cell measured the time it really slept
    assert len(reads) == 4 and list(reads) == sorted(reads)
    replayed, again = await _run(fresh, TIMING_CELL, CellClock(START, "s", reads))
    assert replayed == live and again == reads


async def test_a_replay_that_reads_more_goes_on_in_real_time(
    sandbox: LocalSandbox, fresh: LocalSandbox
) -> None:
    code = (
        "import time\n"
        "n = globals().get('n', 0) + 3\n"
        "values = [time.monotonic_ns() for _ in range(n)]\n"
        "print(values == sorted(values))"
    )
    _, reads = await _run(sandbox, code, CellClock(START, "s"))
    assert (await fresh.execute("n = 3", timeout_s=30)).status == "ok"
    output, more = await _run(fresh, code, CellClock(START, "s", reads))
    assert output == "True\n"
    assert more[:3] == reads and len(more) == 6 and list(more) == sorted(more)


async def test_reads_past_the_cap_are_not_recorded(
    sandbox: LocalSandbox, fresh: LocalSandbox
) -> None:
    code = (
        "import time\n"
        f"values = [time.perf_counter() for _ in range({MAX_READS + 50})]\n"
        "print(values == sorted(values))"
    )
    output, reads = await _run(sandbox, code, CellClock(START, "s"))
    assert output == "True\n" and len(reads) == MAX_READS
    output, again = await _run(fresh, code, CellClock(START, "s", reads))
    assert output == "True\n" and again == reads


async def test_threads_read_a_clock_that_never_goes_back(
    sandbox: LocalSandbox, fresh: LocalSandbox
) -> None:
    code = (
        "import threading, time\n"
        "seen = []\n"
        "def work():\n"
        "    mine = [time.monotonic_ns() for _ in range(200)]\n"
        "    seen.append(mine == sorted(mine))\n"
        "threads = [threading.Thread(target=work) for _ in range(4)]\n"
        "[t.start() for t in threads]; [t.join() for t in threads]\n"
        "print(seen)"
    )
    output, reads = await _run(sandbox, code, CellClock(START, "s"))
    assert output == "[True, True, True, True]\n"
    assert len(reads) == 800 and list(reads) == sorted(reads)
    replayed, _ = await _run(fresh, code, CellClock(START, "s", reads))
    assert replayed == output


async def test_the_clock_does_not_go_back_when_the_wall_clock_does(
    sandbox: LocalSandbox,
) -> None:
    code = "import time\nprint(time.monotonic_ns())"
    later, _ = await _run(sandbox, code, CellClock(START + 100, "s"))
    earlier, _ = await _run(sandbox, code, CellClock(START, "s"))
    assert int(earlier) >= int(later)


async def test_setup_cells_carry_the_clock_for_sandboxes_without_execute_at(
    sandbox: LocalSandbox, fresh: LocalSandbox
) -> None:
    async def run(box: LocalSandbox, clock: CellClock) -> tuple[str, tuple[int, ...]]:
        assert (await box.execute(cell_clock.setup_code(clock), timeout_s=30)).status == "ok"
        result = await box.execute(RANDOM_CELL + "\n" + TIMING_CELL, timeout_s=30)
        finished = await box.execute(cell_clock.FINISH_CODE, timeout_s=30)
        return result.output, cell_clock.finished_reads(finished.output)

    live, reads = await run(sandbox, CellClock(START, "s"))
    assert len(reads) == 4
    replayed, _ = await run(fresh, CellClock(START, "s", reads))
    assert replayed == live


def test_the_host_rejects_malformed_reads() -> None:
    assert parse_clock_reads(None) == () and parse_clock_reads([1, 2]) == (1, 2)
    for bad in ("12", [1.5], [True], [2**63], [0] * (MAX_READS + 1)):
        with pytest.raises(ProtocolViolation):
            parse_clock_reads(bad)
    assert cell_clock.finished_reads("not json") == ()


async def test_a_forked_child_draws_its_own_stream(
    sandbox: LocalSandbox, fresh: LocalSandbox
) -> None:
    code = (
        "import os\n"
        "r, w = os.pipe()\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    os.write(w, os.urandom(8).hex().encode()); os._exit(0)\n"
        "os.close(w); os.waitpid(pid, 0)\n"
        "child = os.read(r, 64).decode()\n"
        "print(child, os.urandom(8).hex(), child == os.urandom(8).hex())"
    )
    first, _ = await _run(sandbox, code, CellClock(START, "s"))
    again, _ = await _run(fresh, code, CellClock(START, "s"))
    child, parent, repeated = first.split()
    assert child != parent and repeated == "False"
    assert again == first


async def test_uuid1_is_stable_when_uuid_was_imported_before_the_clock(
    sandbox: LocalSandbox, fresh: LocalSandbox
) -> None:
    outputs: list[str] = []
    for box in (sandbox, fresh):
        assert (await box.execute("import uuid", timeout_s=30)).status == "ok"
        output, _ = await _run(box, "print(uuid.uuid1(), uuid.uuid1())", CellClock(START, "s"))
        outputs.append(output)
    assert outputs[0] == outputs[1]
    first, second = outputs[0].split()
    assert first != second and first[14] == "1"
