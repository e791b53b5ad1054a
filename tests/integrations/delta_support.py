"""Helpers of the Delta lakehouse tests: outside readers, and writer processes."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import textwrap
from typing import Any

WRITER = textwrap.dedent(
    """
    import json, sys
    from rlm_engine.integrations.delta_lake import Lakehouse

    root, name, first, last, batch = sys.argv[1:6]
    retries = []
    lake = Lakehouse(root, sleep=retries.append)
    print("ready", flush=True)
    sys.stdin.readline()  # the parent starts every writer at once
    seqs = list(range(int(first), int(last)))
    for i in range(0, len(seqs), int(batch)):
        rows = [
            {"run_id": "r", "seq": s, "event_type": name, "payload_json": json.dumps(s)}
            for s in seqs[i : i + int(batch)]
        ]
        lake.merge("telemetry", rows)
    print(json.dumps({"retries": len(retries)}), flush=True)
    """
)


def start_writers(root: str, ranges: dict[str, tuple[int, int]], batch: int) -> dict[str, int]:
    """Run one writer process per name, merging its `seq` range into `telemetry` in
    batches, all released together; the conflict retries each one needed."""
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-c", WRITER, root, name, str(a), str(b), str(batch)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, (a, b) in ranges.items()
    }
    for proc in procs.values():
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
    for proc in procs.values():
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    retries: dict[str, int] = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        retries[name] = json.loads(out.strip().splitlines()[-1])["retries"]
    return retries


def pyarrow_rows(uri: str) -> list[dict[str, Any]]:
    """The table as `deltalake.DeltaTable(uri).to_pyarrow_table()` reads it.

    The Arrow objects are dropped and collected before returning: delta-rs' file system
    aborts the interpreter if it is still alive at exit."""
    from deltalake import DeltaTable

    reader: Any = DeltaTable(uri)  # pyarrow has no type stubs
    table = reader.to_pyarrow_table()
    rows: list[dict[str, Any]] = table.to_pylist()
    del table, reader
    gc.collect()
    return rows


def duckdb_rows(uri: str, sql: str) -> list[tuple[Any, ...]]:
    """`sql` run by DuckDB over the table's Arrow dataset, registered as `arrow_table`."""
    import duckdb
    from deltalake import DeltaTable

    reader: Any = DeltaTable(uri)
    arrow_table = reader.to_pyarrow_dataset()  # DuckDB finds it by its name
    con = duckdb.connect()
    rows = con.sql(sql).fetchall()
    con.close()
    del arrow_table, reader
    gc.collect()
    return rows
