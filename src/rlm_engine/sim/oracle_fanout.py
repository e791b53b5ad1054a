"""A fan-out policy that drives this engine, ``rlms`` and ``dspy.RLM`` the same way.

As the root it writes one cell that sends N sub-calls through ``llm_query_batched``, times
them inside the REPL and finishes in the format the asking engine expects; as a sub-model
it replies ``ok``. N comes from ``FANOUT=<n>`` in the question. It measures the engines'
sub-call machinery, never a model.

With ``TURNS=<n>`` in the question the root instead writes one trivial cell per turn
(``print(k)  # turn k``, after stamping ``time.time()`` into a list kept in the REPL) for
n turns, then finishes with ``turns done <stamps>``: a loop whose every step costs the
model nothing, so what it takes is the engine's own per-turn work. The turn number comes
from the cells already in the request, so the policy keeps no state between requests.
"""

from __future__ import annotations

import re

from rlm_engine.sim.oracle import ROOT_PROMPT_START
from rlm_engine.sim.policies import JsonMessage, message_text

_COUNT = re.compile(r"FANOUT=(\d+)")
_TURNS = re.compile(r"TURNS=(\d+)")
_TURN_MARK = re.compile(r"# turn (\d+)")

BATCH_CODE = """\
import time
t0 = time.perf_counter()
out = llm_query_batched([f"fanout item {{i}}" for i in range({count})])
elapsed = time.perf_counter() - t0
bad = sum(1 for a in out if not str(a).strip().startswith("ok"))
report = f"elapsed {{elapsed:.4f}} answers {{len(out)}} errors {{bad}}"
print(report)
"""

# How each engine ends a run from code.
_FINISH = {
    "rlm-engine": 'FINAL_VAR("report")',
    "rlms": 'answer["content"] = report\nanswer["ready"] = True',
    "dspy": "SUBMIT(answer=report)",
}
# Each turn's cell stamps the wall clock into `stamps`, kept in the REPL; the finish
# reports them, so a benchmark reads every turn's start from the answer.
_TURN_CELL = """\
import time
try:
    stamps
except NameError:
    stamps = []
stamps.append(time.time())
print({k})  # turn {k}"""
_TURNS_DONE = """\
try:
    stamps
except NameError:
    stamps = []
report = "turns done " + ",".join(f"{s:.6f}" for s in stamps)
"""


def engine_of(messages: list[JsonMessage]) -> str | None:
    """Which engine sent a root request, from its prompt; ``None`` for a sub-call."""
    text = "\n".join(message_text(m) for m in messages)
    if messages and message_text(messages[0]).startswith(ROOT_PROMPT_START):
        return "rlm-engine"
    if '"ready"' in text and "Recursive Language Model" in text:
        return "rlms"
    if "[[ ## " in text and "SUBMIT" in text:
        return "dspy"
    return None


def _dspy_reply(code: str) -> str:
    # dspy's chat adapter parses output fields from these section markers.
    return (
        "[[ ## reasoning ## ]]\nFan out the batch and time it.\n\n"
        f"[[ ## code ## ]]\n```python\n{code}\n```\n\n[[ ## completed ## ]]"
    )


def turns_code(text: str, turns: int, engine: str) -> str:
    """The next cell of a ``TURNS=<n>`` run: the turn after the last one in ``text``."""
    done = max((int(k) for k in _TURN_MARK.findall(text)), default=0)
    if done >= turns:
        return _TURNS_DONE + _FINISH[engine]
    return _TURN_CELL.format(k=done + 1)


class FanoutPolicy:
    """Root: one timed ``llm_query_batched`` cell, then finish (or ``TURNS=<n>`` trivial
    cells, then finish). Sub-calls: ``ok``."""

    def __call__(self, model: str, messages: list[JsonMessage], /) -> str:
        engine = engine_of(messages)
        if engine is None:
            return "ok"
        text = "\n".join(message_text(m) for m in messages)
        turns = _TURNS.search(text)
        if turns is not None:
            code = turns_code(text, int(turns.group(1)), engine)
        else:
            found = _COUNT.search(text)
            count = int(found.group(1)) if found else 16
            code = BATCH_CODE.format(count=count) + _FINISH[engine]
        if engine == "dspy":
            return _dspy_reply(code)
        return f"```repl\n{code}\n```"
