"""``rlm demo``: an RLM run end to end, offline, with a scripted model.

The root's and the sub-model's replies are pre-written, so no account or network is
needed; everything else (the REPL worker, the sub-call fan-out, budgets, the run log) is
the real engine.
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Sequence
from pathlib import Path

from rlm_engine.cli.outcome import exit_code, print_result
from rlm_engine.cli.progress import Progress
from rlm_engine.cli.run_driver import listeners, run_and_record
from rlm_engine.cli.store_access import cli_store
from rlm_engine.service.event_sink import StoreEventSink
from rlm_engine.service.lifecycle import new_run_id, open_run
from rlm_engine.service.principal import Principal
from rlm_engine.service.spec import RunSpec
from rlm_engine.settings import Settings
from rlm_engine.types import Message

QUESTION = "Which host reported a disk failure, and at what time?"
FAILURE = "2026-03-14T03:14:15Z host=db-7 level=ERROR msg=disk /dev/sdb1 FAILED smart=5"

ROOT_TURNS = (
    "Let me look at the context first.\n```repl\n"
    "print(type(context).__name__, len(context))\nprint(context[:300])\n```",
    "It is a log with one event per line. I will split it into chunks and ask a sub-model "
    "to report disk failures in each chunk, all chunks at once.\n```repl\n"
    "lines = context.splitlines()\n"
    "chunks = ['\\n'.join(lines[i:i + 5000]) for i in range(0, len(lines), 5000)]\n"
    "prompts = ['Quote every line that reports a disk failure, or reply NONE.\\n\\n' + c "
    "for c in chunks]\n"
    "answers = llm_query_batched(prompts)\n"
    "hits = [a for a in answers if a.strip() != 'NONE']\n"
    "print(len(chunks), 'chunks;', len(hits), 'with failures:', hits)\n```",
    "One chunk reported a failure. I will parse the host and time in code.\n```repl\n"
    "import re\n"
    "m = re.search(r'^(\\S+) host=(\\S+)', hits[0])\n"
    "answer = f'{m.group(2)} at {m.group(1)}'\n"
    "print(answer)\n```",
    "FINAL_VAR(answer)",
)

NEXT_STEPS = """
This was a scripted model: its replies are pre-written, so the answer shows the engine
working, not a model's reasoning. To ask a real model:

  export OPENAI_API_KEY=...        # or ANTHROPIC_API_KEY / GEMINI_API_KEY, or OPENAI_BASE_URL
  rlm ask "{question}" --context {path} --model openai/gpt-5-mini

`rlm models` shows which providers are configured; `rlm runs list` shows recorded runs.
"""


def write_demo_log(path: Path, lines: int, seed: int = 11) -> None:
    rng = random.Random(seed)
    hosts = [f"web-{i}" for i in range(1, 9)] + ["db-7", "cache-2"]
    messages = [
        "GET /api/orders 200",
        "GET /healthz 200",
        "POST /api/cart 201",
        "cache miss key=user",
        "slow query 812ms",
        "GET /api/items 404",
        "worker heartbeat ok",
        "disk usage 61%",
    ]
    failure_at = rng.randrange(lines // 3, lines)
    rows: list[str] = []
    for i in range(lines):
        if i == failure_at:
            rows.append(FAILURE)
            continue
        second = i % 86_400
        stamp = f"2026-03-14T{second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}Z"
        level = "WARN" if rng.random() < 0.05 else "INFO"
        rows.append(f"{stamp} host={rng.choice(hosts)} level={level} msg={rng.choice(messages)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(rows) + "\n")


def _root(messages: Sequence[Message]) -> str:
    done = sum(1 for m in messages if m.role == "assistant")
    return ROOT_TURNS[min(done, len(ROOT_TURNS) - 1)]


def _sub(messages: Sequence[Message]) -> str:
    hits = [ln for ln in messages[-1].content.splitlines() if "FAILED" in ln and "host=" in ln]
    return "\n".join(hits) if hits else "NONE"


def run_demo(args: argparse.Namespace) -> int:
    from rlm_engine.engine.journal_store import StoreJournal
    from rlm_engine.engine.rlm import RLM
    from rlm_engine.lm.scripted import ScriptedModel

    settings = Settings.from_env()
    log_path = settings.home / "demo" / "service.log"
    write_demo_log(log_path, args.lines)
    print(
        f"rlm demo: offline, scripted model (pre-written replies), real REPL and sub-calls.\n"
        f"context: {log_path} ({log_path.stat().st_size:,} bytes)\nquestion: {QUESTION}\n",
        flush=True,
    )
    root = ScriptedModel(_root, name="scripted/demo-root")
    sub = ScriptedModel(_sub, name="scripted/demo-sub")
    run_id = new_run_id()
    spec = RunSpec(model=root.name, sub_model=sub.name, context=(str(log_path),))
    with cli_store(settings) as store:
        sink = StoreEventSink(store)
        progress = Progress(verbose=args.verbose)
        rlm = RLM(root, sub, env=settings.env, on_event=listeners(run_id, sink, progress))
        pin = open_run(store, run_id, QUESTION, spec, who=Principal.local())
        result = run_and_record(
            rlm,
            store,
            sink,
            progress,
            run_id=run_id,
            question=QUESTION,
            context=log_path,
            journal=StoreJournal(store, run_id),
            pin=pin,
        )
    print_result(result, args.json)
    if not args.json:
        print(NEXT_STEPS.format(question=QUESTION, path=log_path))
    return exit_code(result)
