"""A benchmark task: question, context and gold answer, with the oracle's ground truth."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from rlm_engine.sim.oracle_registry import (
    ContextData,
    OracleFact,
    OracleRegistry,
    OracleTask,
    context_fingerprint,
    text_digest,
)


def task_id(suite: str, size_tokens: int, index: int, seed: int) -> str:
    """A task's id: the suite, size, seed and index that regenerate it exactly."""
    return f"{suite}-{size_tokens}-s{seed}-{index:03d}"


@dataclass(frozen=True, slots=True)
class Task:
    """One generated task.

    ``answer`` is the gold answer in the published format. ``solution``, ``facts`` and
    ``labels`` are the ground truth the simulator's oracle answers from; a real model never
    sees them.
    """

    id: str
    suite: str
    size_tokens: int
    question: str
    context: ContextData
    answer: str
    solution: str
    facts: tuple[OracleFact, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict[str, str])
    meta: Mapping[str, str] = field(default_factory=dict[str, str])

    @property
    def context_chars(self) -> int:
        """Characters of context text (file contents for mappings, items for lists)."""
        if isinstance(self.context, str):
            return len(self.context)
        if isinstance(self.context, dict):
            return sum(len(k) + len(v) for k, v in self.context.items())
        return sum(len(item) for item in self.context)


def render_context(context: ContextData) -> str:
    """The context as one text, as the direct baseline sends it."""
    if isinstance(context, str):
        return context
    if isinstance(context, dict):
        return "\n\n".join(f"=== {path} ===\n{body}" for path, body in context.items())
    return "\n\n".join(f"[document {i + 1}]\n{doc}" for i, doc in enumerate(context))


def direct_prompt(task: Task) -> str:
    """The single prompt of the direct baseline: the whole context, then the question."""
    return (
        "Read the context below and answer the question after it.\n\n"
        f"Context:\n{render_context(task.context)}\n\nQuestion: {task.question}"
    )


def register_with_oracle(task: Task, registry: OracleRegistry) -> None:
    """Give the simulator's oracle this task's ground truth."""
    registry.register(
        OracleTask(
            task_id=task.id,
            fingerprint=context_fingerprint(task.context),
            question=task.question,
            solution=task.solution,
            answer=task.answer,
            direct_digest=text_digest(direct_prompt(task)),
        ),
        facts=task.facts,
        labels=task.labels,
    )
