"""Sandbox start to first result, and per-cell round trip: ours vs the peers' default REPLs.

Ours: the local sandbox bubblewrap-isolated (default here) and with `isolation="none"`,
both cold, and a warm pool (`sandbox_factory(pool_size=2)`). The peers, each from its own
virtual environment: `rlms`'s default `LocalREPL` (`exec` in the host process) and
`dspy.RLM`'s default `PythonInterpreter` (Deno + Pyodide). dspy's default interpreter is
tried as shipped; on this machine it cannot start (its runner imports a module from
deno.land, which has no DNS here), so it is also measured with that one import replaced by
an equivalent local line reader: the same Deno, the same Pyodide (from the npm registry),
the same runner otherwise. dspy's `LocalInterpreter` is shown too, since the other
benchmarks drive dspy.RLM with it.

"Start to first result" = construct + start the REPL + run `print(1 + 1)` and get `2`
back. "Per cell" = `x = 1` in a started REPL. Medians (p90) of several repetitions.

    uv venv /tmp/peers/rlms --python 3.11
    uv pip install --python /tmp/peers/rlms/bin/python rlms
    uv venv /tmp/peers/dspy --python 3.11
    uv pip install --python /tmp/peers/dspy/bin/python dspy deno
    uv run python benchmarks/sandbox_vs_peers.py
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rlm_engine.sandbox.base import Sandbox
from rlm_engine.sandbox.factory import sandbox_factory
from rlm_engine.sandbox.isolation import IsolationMode, probe

STARTS = 15
SLOW_STARTS = 5
CELLS = 300
RESULTS = Path(__file__).parent / "results" / "sandbox_vs_peers.md"
RLMS_PYTHON = os.environ.get("PEER_RLMS_PYTHON", "/tmp/peers/rlms/bin/python")
DSPY_PYTHON = os.environ.get("PEER_DSPY_PYTHON", "/tmp/peers/dspy/bin/python")

# argv: starts, cells. Prints one JSON line.
RLMS_DRIVER = """
import json, sys, time, importlib.metadata as md
from rlm.environments.local_repl import LocalREPL

starts, cells = int(sys.argv[1]), int(sys.argv[2])
LocalREPL().cleanup()  # warm-up: imports
start_times = []
for _ in range(starts):
    began = time.perf_counter()
    repl = LocalREPL(context_payload="sandbox benchmark context")
    out = repl.execute_code("print(1 + 1)")
    start_times.append(time.perf_counter() - began)
    assert out.stdout == "2\\n", out
    repl.cleanup()
repl = LocalREPL(context_payload="sandbox benchmark context")
cell_times = []
for _ in range(cells):
    began = time.perf_counter()
    repl.execute_code("x = 1")
    cell_times.append(time.perf_counter() - began)
repl.cleanup()
print(json.dumps({"version": md.version("rlms"), "starts": start_times, "cells": cell_times}))
"""

DSPY_DRIVER = r"""
import json, os, re, shutil, subprocess, sys, tempfile, time, importlib.metadata as md
from pathlib import Path
import dspy.primitives.python_interpreter as pi
from dspy.primitives.local_interpreter import LocalInterpreter

starts, slow_starts, cells = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])

# A line reader over Deno.stdin, standing in for deno.land/std's `readLines`.
READ_LINES = r'''
async function* readLines(reader) {
  const decoder = new TextDecoder();
  const chunk = new Uint8Array(65536);
  let buffer = "";
  while (true) {
    const n = await reader.read(chunk);
    if (n === null) break;
    buffer += decoder.decode(chunk.subarray(0, n), { stream: true });
    let index;
    while ((index = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, index);
      buffer = buffer.slice(index + 1);
      yield line.endsWith("\r") ? line.slice(0, -1) : line;
    }
  }
  buffer += decoder.decode();
  if (buffer.length) yield buffer;
}
'''


def vm_hwm_kb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def measure(make, n_starts, pid_of=None):
    warm = make()
    warm.execute("print(1 + 1)")  # warm-up: imports, caches
    warm.shutdown()
    start_times, rss = [], 0
    for _ in range(n_starts):
        began = time.perf_counter()
        interp = make()
        out = interp.execute("print(1 + 1)")
        start_times.append(time.perf_counter() - began)
        assert str(out).strip() == "2", out
        if pid_of is not None:
            rss = max(rss, vm_hwm_kb(pid_of(interp)))
        interp.shutdown()
    interp = make()
    interp.execute("print(1 + 1)")
    cell_times = []
    for _ in range(cells):
        began = time.perf_counter()
        interp.execute("x = 1")
        cell_times.append(time.perf_counter() - began)
    interp.shutdown()
    return {"starts": start_times, "cells": cell_times, "rss_kb": rss}


report = {"version": md.version("dspy")}
runner = Path(pi.__file__).with_name("runner.js")
try:
    interp = pi.PythonInterpreter()
    began = time.perf_counter()
    interp.execute("print(1 + 1)")
    report["default"] = measure(pi.PythonInterpreter, slow_starts, lambda i: i.deno_process.pid)
except Exception as exc:
    text = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).split())
    report["default_error"] = f"{type(exc).__name__}: {text.split(': ')[0]}"
    deno = pi._find_deno_executable()
    probe = subprocess.run([deno, "run", "--no-config", "--no-lock", str(runner)],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    clean = re.sub(r"\x1b\[[0-9;]*m", "", probe.stderr)
    report["default_reason"] = " ".join(
        line.strip() for line in clean.splitlines()[:4] if line.strip())
    source = runner.read_text()
    imported = re.search(r'^import \{ readLines \} from "https://deno\.land/[^"]+";$', source, re.M)
    assert imported is not None, "runner.js changed; the stand-in needs updating"
    report["replaced_import"] = imported.group(0)
    patched = Path(tempfile.mkdtemp(prefix="dspy-runner-")) / "runner.js"
    patched.write_text(source.replace(imported.group(0), READ_LINES))
    deno_dir = pi.PythonInterpreter._get_deno_dir(deno)
    read = ",".join(os.path.realpath(p) for p in [str(patched), deno_dir] if p)
    command = [deno, "run", "--no-config", "--no-lock", "--node-modules-dir=false",
               f"--allow-read={read}", str(patched), "", f"--dspy-deno-dir={deno_dir}"]
    os.environ["DENO_NO_PACKAGE_JSON"] = "1"
    try:
        report["standin"] = measure(lambda: pi.PythonInterpreter(deno_command=command),
                                    slow_starts, lambda i: i.deno_process.pid)
    except Exception as exc2:
        report["standin_error"] = f"{type(exc2).__name__}: {exc2}"
    finally:
        shutil.rmtree(patched.parent, ignore_errors=True)
report["local"] = measure(LocalInterpreter, starts,
                          lambda i: getattr(getattr(i, "_process", None), "pid", os.getpid()))
print(json.dumps(report))
"""


async def handler(method: str, params: Mapping[str, Any]) -> Any:
    return "ok"


def vm_hwm_kb(pid: int | None) -> int:
    if pid is None:
        return 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


async def first_result(box: Sandbox) -> None:
    await box.start()
    result = await box.execute("print(1 + 1)", timeout_s=10)
    assert result.output == "2\n", result


async def ours_cold(modes: list[IsolationMode], parent: Path) -> list[dict[str, Any]]:
    """Cold starts of each isolation mode, interleaved so load spikes hit all alike."""
    builds = [sandbox_factory(isolation=mode, workdir_parent=parent) for mode in modes]
    out: list[dict[str, Any]] = [{"starts": [], "cells": [], "rss_kb": 0} for _ in modes]
    for build in builds:
        warm = build(handler, ())
        await first_result(warm)  # warm-up: imports, page cache
        await warm.close()
    for _ in range(STARTS):
        for build, data in zip(builds, out, strict=True):
            began = time.perf_counter()
            box = build(handler, ())
            await first_result(box)
            data["starts"].append(time.perf_counter() - began)
            data["rss_kb"] = max(data["rss_kb"], vm_hwm_kb(getattr(box, "pid", None)))
            await box.close()
    for build, data in zip(builds, out, strict=True):
        box = build(handler, ())
        await first_result(box)
        for _ in range(CELLS):
            began = time.perf_counter()
            await box.execute("x = 1", timeout_s=10)
            data["cells"].append(time.perf_counter() - began)
        await box.close()
    return out


async def ours_pool(parent: Path) -> dict[str, Any]:
    build = sandbox_factory(pool_size=2, workdir_parent=parent)
    pool = getattr(build, "pool", None)
    assert pool is not None
    starts: list[float] = []
    try:
        for _ in range(STARTS + 1):
            await pool.fill()  # the pool refills between runs, off the measured path
            began = time.perf_counter()
            box = build(handler, ())
            await first_result(box)
            starts.append(time.perf_counter() - began)
            await box.close()
    finally:
        await build.close()  # type: ignore[attr-defined]
    return {"starts": starts[1:], "cells": [], "rss_kb": 0}


def peer(python: str, driver: str, *args: int) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as handle:
        handle.write(driver)
    try:
        done = subprocess.run(
            [python, handle.name, *map(str, args)],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
            cwd=tempfile.gettempdir(),
        )
    finally:
        os.unlink(handle.name)
    if done.returncode != 0:
        last = [line for line in done.stderr.splitlines() if line.strip()][-3:]
        raise RuntimeError(f"exit {done.returncode}: {' / '.join(last)}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def ms(values: list[float]) -> str:
    if not values:
        return "–"
    p90 = sorted(values)[int(len(values) * 0.9)]
    return f"{statistics.median(values) * 1000:.2f} ({p90 * 1000:.2f})"


def ratio(values: list[float], base: list[float]) -> str:
    if not values or not base:
        return "–"
    value = statistics.median(values) / statistics.median(base)
    return f"{value:.2f}x" if value >= 0.1 else f"{value:.3f}x"


async def main() -> None:
    caps = probe()
    measured: list[tuple[str, str, dict[str, Any]]] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="rlm-bench-") as tmp:
        parent = Path(tmp)
        iso, plain = await ours_cold(["auto", "none"], parent)
        measured.append(
            (f"rlm-engine, default (`{caps.best}`, own uid, rlimits)", "separate process", iso)
        )
        measured.append(('rlm-engine, `isolation="none"`', "separate process", plain))
        pool = await ours_pool(parent)
        pool["cells"] = iso["cells"]
        measured.append(
            ("rlm-engine, warm pool (`pool_size=2`), isolated", "separate process", pool)
        )
    try:
        rlms = peer(RLMS_PYTHON, RLMS_DRIVER, STARTS, CELLS)
        rlms["rss_kb"] = 0
        measured.append(
            (f"rlms {rlms['version']} default `LocalREPL`", "`exec` in the host process", rlms)
        )
    except Exception as exc:
        notes.append(f"- rlms could not run: {type(exc).__name__}: {exc}")
    try:
        dspy = peer(DSPY_PYTHON, DSPY_DRIVER, STARTS, SLOW_STARTS, CELLS)
    except Exception as exc:
        dspy = {}
        notes.append(f"- dspy.RLM could not run: {type(exc).__name__}: {exc}")
    version = dspy.get("version", "?")
    if "default" in dspy:
        measured.append(
            (
                f"dspy.RLM {version} default (Deno + Pyodide)",
                "Deno + Pyodide (WASM)",
                dspy["default"],
            )
        )
    elif dspy:
        notes.append(
            f"- dspy.RLM {version}'s default `PythonInterpreter` (Deno + Pyodide) did not start: "
            f"`{dspy['default_error']}`. Deno's own error: `{dspy['default_reason']}`."
        )
        if "standin" in dspy:
            measured.append(
                (
                    f"dspy.RLM {version} default, stand-in: Deno + Pyodide with one import "
                    "replaced (see notes)",
                    "Deno + Pyodide (WASM)",
                    dspy["standin"],
                )
            )
            notes.append(
                "- The stand-in row runs dspy's own `runner.js` under the Deno its `deno` "
                "package installs, with Pyodide from the npm registry, after replacing "
                f"`{dspy['replaced_import']}` by an equivalent local line reader over stdin; "
                "the rest of the runner, the JSON-RPC protocol and the Python side "
                "(`PythonInterpreter(deno_command=...)`) are dspy's own. Its peak RSS is the "
                "Deno process's VmHWM."
            )
        elif "standin_error" in dspy:
            notes.append(f"- The Deno + Pyodide stand-in failed too: {dspy['standin_error']}")
    if "local" in dspy:
        measured.append(
            (
                f"dspy.RLM {version} `LocalInterpreter` (not default)",
                "separate process",
                dspy["local"],
            )
        )
    base = measured[0][2]
    rows = [
        f"| {name} | {where} | {ms(data['starts'])} | {ratio(data['starts'], base['starts'])} "
        f"| {ms(data['cells'])} | {ratio(data['cells'], base['cells'])} "
        f"| {data['rss_kb'] / 1024:.0f} |".replace("| 0 |", "| – |")
        for name, where, data in measured
    ]
    write(rows, notes, caps.best, caps.is_root)
    print("\n".join(rows + notes))


def write(rows: list[str], notes: list[str], level: str, is_root: bool) -> None:
    table = "\n".join(
        [
            "| REPL | runs in | start to first result, ms median (p90) | vs ours "
            "| per cell `x = 1`, ms median (p90) | vs ours | REPL process peak RSS, MiB |",
            "|---|---|---|---|---|---|---|",
            *rows,
        ]
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        "# Sandbox start and per-cell round trip: rlm-engine vs rlms vs dspy.RLM\n\n"
        f"Command: `uv run python benchmarks/sandbox_vs_peers.py` ({time.strftime('%Y-%m-%d')}, "
        f"{platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"running as {'root' if is_root else 'non-root'}; isolation available: {level}; load "
        f"average over the last 5 minutes when the run ended: {os.getloadavg()[1]:.1f})\n\n"
        "Start to first result = build the REPL, start it, run `print(1 + 1)` and get `2` back. "
        "Per cell = `x = 1` in a started REPL, "
        f"{CELLS} times. Medians (p90) of {STARTS} starts ({SLOW_STARTS} for Deno + Pyodide, "
        "which takes seconds each), after one warm-up start each. The warm-pool row hands out "
        "a pre-started isolated worker (the pool refills between starts, off the measured "
        "path); its per-cell figure is the isolated worker's. Ours go through "
        "`rlm_engine.sandbox.factory.sandbox_factory`; the peers run from their own virtual "
        "environments (see the script's docstring). The ratio columns compare with our "
        "default (first row). Peak RSS is the REPL process's VmHWM where it is a process of "
        "its own. The machine has 2 cores shared with other work; expect 10-30% spread.\n\n"
        "What the rows isolate: ours by default is a separate process in bubblewrap (read-only "
        "file system, no network, empty environment, own pid namespace, unprivileged uid, "
        "rlimits); rlms's `LocalREPL` runs model code with `exec` inside the host process "
        "(which holds the credentials); Pyodide in Deno is a WebAssembly sandbox; dspy's "
        "`LocalInterpreter` is an unisolated subprocess.\n\n"
        f"{table}\n" + ("\n## Notes\n\n" + "\n".join(notes) + "\n" if notes else "")
    )


if __name__ == "__main__":
    asyncio.run(main())
