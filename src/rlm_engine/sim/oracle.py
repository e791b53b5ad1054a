"""The oracle policy: a simulated model that solves benchmark tasks from their ground truth.

As the root it writes correct RLM code for the task (inspect the context, chunk it, fan
out with ``llm_query_batched``, aggregate, finish with ``FINAL_VAR``); as a sub-model it
answers from the generator's ground truth (the fact a chunk holds, the labels of question
lines). A perfect score therefore measures the engine and the harness: prompts, the REPL,
the broker, parsing and scoring. It says nothing about any model's quality.

The oracle finds a task from the request itself: its first cell prints the context's
fingerprint, and the next root turn looks that fingerprint up in an ``OracleRegistry``
filled when the task was generated in this process.
"""

from __future__ import annotations

import re

from rlm_engine.sim.oracle_protocol import (
    NOT_FOUND,
    parse_classify_request,
    parse_fact_request,
)
from rlm_engine.sim.oracle_registry import (
    FINGERPRINT_CODE,
    FINGERPRINT_MARKER,
    OracleRegistry,
    default_registry,
)
from rlm_engine.sim.policies import JsonMessage, message_text

# The engine's root system prompt starts with this (see rlm_engine.engine.prompts).
ROOT_PROMPT_START = "You answer a question about a context"
UNKNOWN_LABEL = "unknown"

_FINGERPRINT = re.compile(re.escape(FINGERPRINT_MARKER) + r"\s*([0-9a-f]{64})")

INSPECT_CODE = (
    "print(type(context).__name__, len(context))\n"
    "print(repr(context[:300]) if isinstance(context, str) else repr(context)[:300])\n"
    + FINGERPRINT_CODE
)


def _repl(code: str) -> str:
    return f"```repl\n{code.rstrip()}\n```"


def _final(text: str) -> str:
    # FINAL(...) on its own line outside code; the text must not close the parenthesis early.
    return f"FINAL({text.replace('(', '[').replace(')', ']')})"


class OraclePolicy:
    """Replies as the root, as a sub-model, and as a direct (whole-context) model.

    Measures the engine and harness, never a model: every answer comes from the ground
    truth registered by the task generators.
    """

    def __init__(self, registry: OracleRegistry | None = None) -> None:
        self.registry = registry if registry is not None else default_registry()

    def __call__(self, model: str, messages: list[JsonMessage], /) -> str:
        if not messages:
            return NOT_FOUND
        first = message_text(messages[0])
        if messages[0].get("role") == "system" and first.startswith(ROOT_PROMPT_START):
            return self._root(messages)
        prompt = message_text(messages[-1])
        fact = parse_fact_request(prompt)
        if fact is not None:
            return self._fact(fact.question, fact.text)
        items = parse_classify_request(prompt)
        if items is not None:
            return "\n".join(f"{n}: {self.registry.label(q) or UNKNOWN_LABEL}" for n, q in items)
        return self._direct(prompt)

    def _root(self, messages: list[JsonMessage]) -> str:
        turns = sum(1 for m in messages if m.get("role") == "assistant")
        if turns == 0:
            return _repl(INSPECT_CODE)
        fingerprint = self._fingerprint(messages)
        if fingerprint is None:
            return _final("oracle: the inspection cell printed no context fingerprint")
        task = self.registry.task(fingerprint)
        if task is None:
            return _final(
                "oracle: unknown task; the oracle knows only tasks generated in its own process"
            )
        if turns == 1:
            return _repl(task.solution)
        # The solution ran but the run goes on: it failed. Finish so the failure is scored.
        return _final("oracle: the solution cell did not finish the run")

    def _fingerprint(self, messages: list[JsonMessage]) -> str | None:
        for message in messages:
            if message.get("role") != "user":
                continue
            match = _FINGERPRINT.search(message_text(message))
            if match is not None:
                return match.group(1)
        return None

    def _fact(self, question: str, text: str) -> str:
        for fact in self.registry.facts(question):
            if fact.evidence in text:
                return fact.answer
        return NOT_FOUND

    def _direct(self, prompt: str) -> str:
        task = self.registry.direct_task(prompt)
        if task is None:
            return "oracle: unknown request"
        return task.answer
