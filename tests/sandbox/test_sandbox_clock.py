"""The replay-stable clock inside a real worker: deterministic reads, standard types."""

from __future__ import annotations

import ast

from rlm_engine.sandbox.local import LocalSandbox

START = "import rlm_engine.sandbox.worker_clock as _c\n_c.start(1700000000.0)\ndel _c"


async def test_reads_are_a_function_of_the_start_and_the_code(sandbox: LocalSandbox) -> None:
    cell = (
        "import time, datetime\n"
        "print([time.time(), time.time_ns(), str(datetime.datetime.now()),\n"
        "       str(datetime.date.today()), str(datetime.datetime.utcnow())])"
    )
    runs = []
    for _ in range(2):
        assert (await sandbox.execute(START, timeout_s=10)).status == "ok"
        result = await sandbox.execute(cell, timeout_s=10)
        assert result.status == "ok", result.error
        runs.append(result.output)
    assert runs[0] == runs[1]
    t, t_ns, _, today, utc = ast.literal_eval(runs[0])
    assert t == 1700000000.000001 and t_ns == 1700000000000002000
    assert today in ("2023-11-14", "2023-11-15")  # the worker's local time zone decides
    assert utc == "2023-11-14 22:13:20.000005"


async def test_dates_and_times_keep_their_standard_types(sandbox: LocalSandbox) -> None:
    assert (await sandbox.execute(START, timeout_s=10)).status == "ok"
    cell = (
        "import datetime, pickle, json\n"
        "from datetime import date, datetime as dt, timedelta\n"
        "now = dt.now()\n"
        "print([isinstance(now, date), isinstance(dt(2020, 1, 1), dt),\n"
        "       isinstance(date(2020, 1, 1), date), issubclass(dt, date),\n"
        "       repr(now + timedelta(days=1))[:18],\n"
        "       pickle.loads(pickle.dumps(now)) == now, b'ReplayD' in pickle.dumps(now),\n"
        "       dt.fromisoformat('2020-01-02T03:04:05').year, now.date().isoformat()])"
    )
    result = await sandbox.execute(cell, timeout_s=10)
    assert result.status == "ok", result.error
    values = ast.literal_eval(result.output)
    assert values[:4] == [True, True, True, True]
    assert values[4] == "datetime.datetime("
    assert values[5:8] == [True, False, 2020]


async def test_without_a_start_the_repl_keeps_the_real_clock(sandbox: LocalSandbox) -> None:
    result = await sandbox.execute("import time\nprint(time.time() > 1.7e9)", timeout_s=10)
    assert result.output.strip() == "True"
