"""What a test level is: its data, its question, its check, and what the oracle knows.

A level builds its data deterministically from a seed into a directory, so two runs of the
same level and seed see the same bytes and expect the same answer. The oracle knowledge
(the root's solution code, the facts sub-calls may be asked, child tasks) is what the
simulator's oracle answers from; a real model never sees it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlm_engine.jobs.levels.checks import Verdict
from rlm_engine.sim.oracle_registry import (
    FINGERPRINT_MARKER,
    OracleFact,
    OracleRegistry,
    OracleTask,
    text_digest,
)

Check = Callable[[str, Mapping[str, Any] | None], Verdict]
"""Judges a run's answer text and its SUBMIT fields (None when it finished with FINAL)."""


@dataclass(frozen=True, slots=True)
class OracleKnowledge:
    """Ground truth one task gives the oracle: found by ``fingerprint``, solved by
    ``solution`` (REPL code ending in FINAL, FINAL_VAR or SUBMIT)."""

    task_id: str
    fingerprint: str
    question: str
    solution: str
    answer: str
    facts: tuple[OracleFact, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict[str, str])


@dataclass(frozen=True, slots=True)
class Prepared:
    """One level's task, built under a data directory.

    ``oracle_tag``: set for contexts the oracle's inspection cell cannot fingerprint (table
    objects); the question then carries it when the run's model is the simulator.
    ``oracle`` holds the root task first, then any child tasks (``rlm_query``'s).
    """

    question: str
    contexts: tuple[Path, ...]
    expected: str
    check: Check
    oracle: tuple[OracleKnowledge, ...]
    output_schema: Mapping[str, Any] | None = None
    min_depth: int = 1
    oracle_tag: str | None = None

    def question_for(self, model: str) -> str:
        """The question as sent to ``model``: with the oracle's tag for the simulator."""
        if self.oracle_tag is not None and model.startswith("sim/"):
            return f"{self.question}\n(simulator task key, {FINGERPRINT_MARKER} {self.oracle_tag})"
        return self.question


@dataclass(frozen=True, slots=True)
class Level:
    """A rung of the ladder: ``build(directory, seed)`` writes its data and returns it."""

    number: int
    name: str
    exercises: str
    build: Callable[[Path, int], Prepared]


def tag_for(level: int, seed: int) -> str:
    """The oracle key of a table level: a fingerprint-shaped digest of level and seed."""
    return text_digest(f"rlm-test level {level} seed {seed}")


def register(prepared: Prepared, registry: OracleRegistry) -> None:
    """Give the oracle every task of ``prepared`` (idempotent)."""
    for known in prepared.oracle:
        registry.register(
            OracleTask(
                task_id=known.task_id,
                fingerprint=known.fingerprint,
                question=known.question,
                solution=known.solution,
                answer=known.answer,
            ),
            facts=known.facts,
            labels=known.labels,
        )
