"""The benchmark suites: name -> task generator and scorer."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from rlm_engine.bench import gen_codeqa, gen_multidoc, gen_oolong, gen_pairs, gen_sniah, scorers
from rlm_engine.bench.task import Task
from rlm_engine.errors import ConfigurationError

Generator = Callable[[int, int, int], Task]
Scorer = Callable[[str, str], float]


@dataclass(frozen=True, slots=True)
class Suite:
    """A task family: ``generate(size_tokens, index, seed)`` and ``score(prediction, gold)``."""

    name: str
    description: str
    generate: Generator
    score: Scorer


SUITES = MappingProxyType(
    {
        "sniah": Suite(
            "sniah", "RULER single needle (number/UUID)", gen_sniah.generate, scorers.score_needle
        ),
        "oolong": Suite(
            "oolong",
            "OOLONG-synth aggregation questions",
            gen_oolong.generate,
            scorers.score_oolong,
        ),
        "oolong-pairs": Suite(
            "oolong-pairs", "OOLONG-Pairs, set F1", gen_pairs.generate, scorers.score_pairs
        ),
        "multidoc": Suite(
            "multidoc",
            "BrowseComp-like multi-hop documents",
            gen_multidoc.generate,
            scorers.score_exact,
        ),
        "codeqa": Suite(
            "codeqa",
            "multiple choice over a repository",
            gen_codeqa.generate,
            scorers.score_choice,
        ),
    }
)


def parse_suites(text: str) -> list[Suite]:
    """Suites from a comma-separated list of names (``all`` for every suite)."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    if names == ["all"]:
        return list(SUITES.values())
    unknown = [name for name in names if name not in SUITES]
    if unknown or not names:
        raise ConfigurationError(
            f"unknown suite(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(SUITES)}"
        )
    return [SUITES[name] for name in dict.fromkeys(names)]


def generate_tasks(
    suites: Sequence[Suite], sizes: Sequence[int], count: int, seed: int = 0
) -> Iterator[Task]:
    """``count`` tasks per suite and size, generated lazily in a fixed order."""
    for suite in suites:
        for size in sizes:
            for index in range(count):
                yield suite.generate(size, index, seed)
