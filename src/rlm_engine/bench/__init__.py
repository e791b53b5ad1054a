"""Offline benchmark suites (S-NIAH, OOLONG, OOLONG-Pairs, multi-document, code QA), their
published scorers, and the runner behind ``rlm bench run``.

Tasks are generated offline from a seed. Scores against the simulator's oracle measure the
engine and harness; scores against real models measure the models.
"""

from rlm_engine.bench.sizes import format_size, parse_size, parse_sizes
from rlm_engine.bench.suites import SUITES, Suite, generate_tasks
from rlm_engine.bench.task import Task

__all__ = [
    "SUITES",
    "Suite",
    "Task",
    "format_size",
    "generate_tasks",
    "parse_size",
    "parse_sizes",
]
