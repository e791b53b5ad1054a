"""A fan-out policy that drives this engine, ``rlms`` and ``dspy.RLM`` the same way.

As the root it writes one cell that sends N sub-calls through ``llm_query_batched``, times
them inside the REPL and finishes in the format the asking engine expects; as a sub-model
it replies ``ok``. N comes from ``FANOUT=<n>`` in the question. It measures the engines'
sub-call machinery, never a model.
"""

from __future__ import annotations

import re

from rlm_engine.sim.oracle import ROOT_PROMPT_START
from rlm_engine.sim.policies import JsonMessage, message_text

_COUNT = re.compile(r"FANOUT=(\d+)")

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


class FanoutPolicy:
    """Root: one timed ``llm_query_batched`` cell, then finish. Sub-calls: ``ok``."""

    def __call__(self, model: str, messages: list[JsonMessage], /) -> str:
        engine = engine_of(messages)
        if engine is None:
            return "ok"
        found = _COUNT.search("\n".join(message_text(m) for m in messages))
        count = int(found.group(1)) if found else 16
        code = BATCH_CODE.format(count=count) + _FINISH[engine]
        if engine == "dspy":
            return _dspy_reply(code)
        return f"```repl\n{code}\n```"
