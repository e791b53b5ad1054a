"""Per-turn engine overhead with a model that answers at once: `rlm ask` vs rlms vs dspy.RLM.

One simulator process (`rlm sim serve --policy fanout`, no latency) serves everyone. The
question `TURNS=<n>` makes the root write one trivial cell per turn (`print(k)`) for n
turns and then finish (see `rlm_engine.sim.oracle_fanout`), in each engine's own format.

Each cell stamps `time.time()` into a list kept in the REPL and the answer reports the
stamps: per turn = the median gap between the starts of consecutive cells of a 20-turn
run (one root call with its parsing and bookkeeping, one cell), then the median over
rounds, the engines interleaved within each round. Ours is the real CLI: `rlm ask` in its
own process, journaled in a fresh SQLite store under a temporary RLM_HOME; beside it the
same loop in-process (`RLM(...).run`, journal in memory). The peers run in their own
virtual environments, pointed at the same simulator by base_url, after a warm-up run.

The floor is what a bare HTTP client (`http.client`, one keep-alive connection) takes for
the same requests to the same server: the 21 chat requests of a 20-turn conversation
with this engine's prompts, sent one after another, in the same run. Overhead per turn =
per turn - floor.

    uv venv /tmp/peers/rlms --python 3.11
    uv pip install --python /tmp/peers/rlms/bin/python rlms
    uv venv /tmp/peers/dspy --python 3.11
    uv pip install --python /tmp/peers/dspy/bin/python dspy deno
    uv run python benchmarks/turns.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import statistics
import time
from pathlib import Path
from urllib.parse import urlsplit

from sim_bench import rlm_ask, run_peer, sample, start_sim

from rlm_engine.engine import prompts
from rlm_engine.sandbox.base import ContextMeta

TURNS = 20
RESULTS = Path(__file__).parent / "results" / "turns.md"
RLMS_PYTHON = os.environ.get("PEER_RLMS_PYTHON", "/tmp/peers/rlms/bin/python")
DSPY_PYTHON = os.environ.get("PEER_DSPY_PYTHON", "/tmp/peers/dspy/bin/python")
CONTEXT = "turns benchmark context"

# Each driver: argv = base_url, turns, context; warms up once, then prints one JSON line
# {"version": ..., "answer": the answer of a TURNS=<turns> run}.
RLMS_DRIVER = """
import json, sys, importlib.metadata as md
from rlm import RLM
url, turns = sys.argv[1], int(sys.argv[2])
def once(n):
    rlm = RLM(backend="openai", backend_kwargs={"model_name": "sim-model", "base_url": url,
              "api_key": "sim"}, max_iterations=n + 5)
    result = rlm.completion(sys.argv[3], root_prompt=f"TURNS={n}")
    return str(result.response)
once(1)
print(json.dumps({"version": md.version("rlms"), "answer": once(turns)}))
"""

DSPY_DRIVER = """
import json, sys, importlib.metadata as md
import dspy
from dspy.primitives.local_interpreter import LocalInterpreter
url, turns = sys.argv[1], int(sys.argv[2])
dspy.configure(lm=dspy.LM("openai/sim-model", api_base=url, api_key="sim", cache=False))
def once(n):
    # The default Deno + Pyodide interpreter fetches modules from deno.land at start,
    # which this machine cannot reach; the local subprocess interpreter runs the same loop.
    rlm = dspy.RLM("context, query -> answer", max_iters=n + 5,
                   interpreter_factory=LocalInterpreter)
    out = rlm(context=sys.argv[3], query=f"TURNS={n}")
    return str(out.answer)
once(1)
print(json.dumps({"version": md.version("dspy"), "answer": once(turns)}))
"""


def turn_gaps(answer: str, turns: int) -> list[float]:
    """Seconds between the starts of consecutive turns, from the stamps the cells took."""
    if not answer.startswith("turns done"):
        raise RuntimeError(f"unexpected answer: {answer[:200]!r}")
    stamps = [float(part) for part in answer.removeprefix("turns done").strip().split(",") if part]
    if len(stamps) != turns:
        raise RuntimeError(f"{len(stamps)} turns ran, not {turns}")
    return [b - a for a, b in zip(stamps, stamps[1:], strict=False)]


def ours_cli(url: str, turns: int) -> str:
    """The answer of one `rlm ask` with TURNS=turns."""
    result = rlm_ask(url, f"TURNS={turns}", CONTEXT, "--max-iterations", str(turns + 5))
    if result["iterations"] != turns + 1:
        raise RuntimeError(f"unexpected run: {result['stop_reason']} {result['iterations']}")
    return str(result["answer"])


def ours_library(url: str) -> str:
    """`RLM(...).run` in this process: the same loop without the CLI's SQLite store."""
    from rlm_engine import RLM

    with RLM("sim/sim-model", env={"RLM_SIM_URL": url}, max_iterations=TURNS + 5) as rlm:
        return rlm.run(f"TURNS={TURNS}", CONTEXT).answer


def peer(python: str, driver: str, url: str) -> tuple[str, str]:
    out = run_peer(python, driver, [url, str(TURNS), CONTEXT])
    report = json.loads(out.strip().splitlines()[-1])
    return str(report["version"]), str(report["answer"])


def floor(url: str) -> list[float]:
    """Seconds per request of a bare keep-alive client sending this engine's 20-turn
    conversation (system prompt, context description, cells and their feedback)."""
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    question = f"TURNS={TURNS}"
    meta = ContextMeta(type="str", total_chars=len(CONTEXT), preview=CONTEXT, files=1)
    system = prompts.system_prompt(
        max_output_chars=20_000, max_concurrency=32, can_recurse=False, has_schema=False, tools=()
    )
    first = prompts.first_user_message(question, meta, None)
    messages = [
        {"role": "system", "content": system},
        {"role": "user", "content": f"{first}\n\n{prompts.FIRST_TURN_GUARD}"},
    ]
    connection = http.client.HTTPConnection(parts.hostname, parts.port)
    times: list[float] = []
    try:
        for turn in range(1, TURNS + 2):
            body = json.dumps({"model": "sim-model", "messages": messages}).encode()
            began = time.perf_counter()
            connection.request(
                "POST",
                f"{parts.path}/chat/completions",
                body,
                {"Content-Type": "application/json", "Authorization": "Bearer sim"},
            )
            reply = json.loads(connection.getresponse().read())
            times.append(time.perf_counter() - began)
            text = reply["choices"][0]["message"]["content"]
            feedback = prompts.turn_feedback([str(turn)], question, "", turn, None)
            messages += [
                {"role": "assistant", "content": text},
                {"role": "user", "content": feedback},
            ]
    finally:
        connection.close()
    return times


def ms(value: float) -> str:
    return f"{value * 1000:.1f}"


def show(value: float | str) -> str:
    return value if isinstance(value, str) else ms(value)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    proc, url = start_sim("--policy", "fanout")
    floors: list[float] = []
    samples: dict[str, list[float | str]] = {
        "ours": [],
        "ours-library": [],
        "rlms": [],
        "dspy": [],
    }
    versions: dict[str, str] = {}
    try:
        ours_cli(url, 1)  # warm-up: the first run of a process pays for cold caches
        ours_library(url)
        for round_ in range(args.rounds):
            floors += floor(url)
            answer = ours_cli(url, TURNS)
            samples["ours"].append(statistics.median(turn_gaps(answer, TURNS)))
            samples["ours-library"].append(
                sample(lambda: statistics.median(turn_gaps(ours_library(url), TURNS)))
            )
            for name, python, driver in (
                ("rlms", RLMS_PYTHON, RLMS_DRIVER),
                ("dspy", DSPY_PYTHON, DSPY_DRIVER),
            ):

                def measure(python: str = python, driver: str = driver, name: str = name) -> float:
                    version, answer = peer(python, driver, url)
                    versions[name] = version
                    return statistics.median(turn_gaps(answer, TURNS))

                samples[name].append(sample(measure))
            print(
                f"round {round_ + 1}: "
                + ", ".join(f"{k} {show(v[-1])}" for k, v in samples.items())
                + " ms/turn",
                flush=True,
            )
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    write(args.rounds, floors, samples, versions)


def write(
    rounds: int,
    floors: list[float],
    samples: dict[str, list[float | str]],
    versions: dict[str, str],
) -> None:
    base = statistics.median(floors)
    labels = {
        "ours": "**`rlm ask`, journaled (SQLite), isolated REPL**",
        "ours-library": "`RLM(...).run` in-process, journal in memory (no SQLite)",
        "rlms": f"rlms {versions.get('rlms', '')}".strip(),
        "dspy": f"dspy.RLM {versions.get('dspy', '')}, LocalInterpreter".strip(),
    }
    rows: list[str] = []
    notes: list[str] = []
    for name, got in samples.items():
        errors = [g for g in got if isinstance(g, str)]
        values = [g for g in got if not isinstance(g, str)]
        if errors:
            notes.append(f"- {labels[name]}: {len(errors)} of {len(got)} runs failed: {errors[0]}")
        if values:
            value = statistics.median(values)
            rows.append(
                f"| {labels[name]} | {ms(value)} ({ms(min(values))}-{ms(max(values))}) "
                f"| {ms(value - base)} |"
            )
    table = [
        "| engine | per turn, ms: median (range over rounds) | over the floor, ms |",
        "|---|---|---|",
        *rows,
        f"| bare HTTP client (`http.client`, keep-alive): the floor | {ms(base)} | 0 |",
    ]
    notes_text = "\n## Notes\n\n" + "\n".join(notes) + "\n" if notes else ""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        "# Per-turn overhead: rlm-engine vs rlms vs dspy.RLM, zero-latency model\n\n"
        f"Command: `uv run python benchmarks/turns.py --rounds {rounds}` "
        f"({time.strftime('%Y-%m-%d')})  \n"
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs shared with other work, "
        f"Python {platform.python_version()}.\n\n"
        "One `rlm sim serve --policy fanout` process (no latency) serves every engine. "
        f"`TURNS={TURNS}` makes the root write one trivial cell per turn, then finish; each "
        "cell stamps `time.time()` into a list kept in the REPL and the answer reports the "
        "stamps. Per turn = the median gap between the starts of consecutive cells of a "
        f"{TURNS}-turn run (one root call, its parsing and bookkeeping, one cell), then the "
        f"median over {rounds} rounds with the engines interleaved. `rlm ask` is the CLI as "
        "users run it: its own process, journaled in a fresh SQLite store, isolated REPL "
        "(bubblewrap where available); its journaled REPL's clock reads the time each cell "
        "was journaled. The peers run in their own venvs, pointed at the simulator by "
        "base_url, after a warm-up run. The floor is a bare keep-alive HTTP client sending "
        f"the same {TURNS + 1} requests (this engine's prompts) to the same server in the "
        "same run. The in-process row is the same engine loop with its journal in memory, "
        "so its difference to the headline is what the SQLite journal costs per turn. "
        "(Timing whole `rlm ask` processes, (T(20) - T(0)) / 20, was tried and dropped: "
        "process start-up on this shared machine varies by more than the 20 turns "
        "take.) Simulator replies measure the engines, not a model.\n\n"
        + "\n".join(table)
        + "\n"
        + notes_text
    )


if __name__ == "__main__":
    main()
