"""Ground truth the oracle policy answers from, filled when benchmark tasks are generated.

The oracle never reads a task's answer off the context: task generators register what they
know (the root code that solves the task, the facts sub-calls may be asked about and the
label of every item to classify) and the oracle looks them up by what a request contains.
Replies built from this registry measure the engine and harness, never a model.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# Marker the oracle's first root cell prints; the next root turn reads the task from it.
FINGERPRINT_MARKER = "context fingerprint:"

# The same computation as ``context_fingerprint`` written as REPL code, so the oracle can
# identify a task from the context itself without the question having to carry an id.
# A context that is not text or JSON data (a table) has no fingerprint: the oracle then
# knows the task by a key in its question.
FINGERPRINT_CODE = f"""\
import hashlib as _hashlib, json as _json
try:
    _raw = context if isinstance(context, str) else _json.dumps(
        context, ensure_ascii=False, sort_keys=True)
except TypeError:
    _raw = None
if _raw is not None:
    print({FINGERPRINT_MARKER!r}, _hashlib.sha256(_raw.encode("utf-8")).hexdigest())
del _raw, _hashlib, _json
"""

ContextData = str | list[str] | dict[str, str]


def context_fingerprint(context: ContextData) -> str:
    """SHA-256 of a context: its text, or its canonical JSON for lists and mappings."""
    raw = (
        context
        if isinstance(context, str)
        else json.dumps(context, ensure_ascii=False, sort_keys=True)
    )
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def text_digest(text: str) -> str:
    """SHA-256 of a prompt's text (keys direct-baseline prompts)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class OracleFact:
    """A sub-question the oracle can answer when ``evidence`` is in the text it is given."""

    question: str
    evidence: str
    answer: str


@dataclass(frozen=True, slots=True)
class OracleTask:
    """What the oracle knows about one task.

    ``solution`` is the root's REPL code for the task (it must end by calling ``FINAL`` or
    ``FINAL_VAR``); ``answer`` is the gold answer, given only to direct-baseline requests.
    """

    task_id: str
    fingerprint: str
    question: str
    solution: str
    answer: str
    direct_digest: str = ""


class OracleRegistry:
    """Tasks by context fingerprint, facts by sub-question, labels by item text.

    Thread-safe: the simulator answers on its own thread while tasks are registered on
    the caller's.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tasks: dict[str, OracleTask] = {}
        self._direct: dict[str, OracleTask] = {}
        self._facts: dict[str, list[OracleFact]] = {}
        self._labels: dict[str, str] = {}

    def register(
        self,
        task: OracleTask,
        facts: Iterable[OracleFact] = (),
        labels: Mapping[str, str] | None = None,
    ) -> None:
        """Add a task with its facts and item labels (idempotent for the same task)."""
        with self._lock:
            self._tasks[task.fingerprint] = task
            if task.direct_digest:
                self._direct[task.direct_digest] = task
            for fact in facts:
                known = self._facts.setdefault(fact.question, [])
                if fact not in known:
                    known.append(fact)
            if labels:
                self._labels.update(labels)

    def task(self, fingerprint: str) -> OracleTask | None:
        """The task whose context has this fingerprint."""
        with self._lock:
            return self._tasks.get(fingerprint)

    def direct_task(self, prompt: str) -> OracleTask | None:
        """The task whose direct-baseline prompt is exactly ``prompt``."""
        digest = text_digest(prompt)
        with self._lock:
            return self._direct.get(digest)

    def facts(self, question: str) -> tuple[OracleFact, ...]:
        """Facts registered for this sub-question."""
        with self._lock:
            return tuple(self._facts.get(question.strip(), ()))

    def label(self, item: str) -> str | None:
        """The ground-truth label of an item (e.g. an OOLONG question line)."""
        with self._lock:
            return self._labels.get(item.strip())

    def __len__(self) -> int:
        with self._lock:
            return len(self._tasks)


_DEFAULT: list[OracleRegistry] = []


def default_registry() -> OracleRegistry:
    """The process-wide registry used by ``sim/oracle`` and the benchmark runner.

    Created on first use, not at import time.
    """
    if not _DEFAULT:
        _DEFAULT.append(OracleRegistry())
    return _DEFAULT[0]
