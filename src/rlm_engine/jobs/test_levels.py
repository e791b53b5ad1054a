"""``rlm-test`` (and ``rlm jobs test``): run the graded ladder of built-in test levels.

Each level brings its own data (generated from ``--seed``), question and check, and runs
through the run service as ``rlm ask`` does, with ``rlm ask``'s model and limit flags.
Without ``--model`` the levels run offline on the project's simulator, whose oracle
answers from the ground truth each level registers in this process: a pass there
measures the engine (REPL, sub-calls, child RLMs, table contexts, typed answers), never a
model. With ``--model`` any real model takes the same ladder.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rlm_engine.cli.commands.ask import add_run_options
from rlm_engine.cli.commands.flags import Parser, int_at_least
from rlm_engine.errors import ConfigurationError
from rlm_engine.jobs.args import add_lakehouse_options

if TYPE_CHECKING:
    from rlm_engine.jobs.levels.base import Level
    from rlm_engine.jobs.levels.runner import LevelOutcome

SIMULATOR = "sim/oracle"
"""The default model: the in-process simulator answering from the levels' ground truth."""

EXECUTORS = ("inline", "process")

EXIT_ALL_PASSED = 0
EXIT_SOME_FAILED = 1


def build_parser(prog: str = "rlm-test") -> argparse.ArgumentParser:
    """The ``rlm-test`` parser: which levels, where their data goes, and ``rlm ask``'s run
    flags (``--model``, ``--sub-model``, limits, isolation)."""
    p = Parser(
        prog=prog,
        description="Run built-in test levels, from a one-cell arithmetic task to a "
        "multi-table join with sub-calls and a typed answer; each checks its own answer. "
        f"Offline by default (--model {SIMULATOR}: the simulator's oracle, which measures "
        "the engine, not a model); pass --model provider/model to grade a real model.",
    )
    which = p.add_argument_group("levels")
    which.add_argument("--list", action="store_true", help="print the ladder and exit")
    which.add_argument(
        "--level",
        metavar="N",
        help="the level(s) to run: a number, a range (1-4), a comma list, or a name",
    )
    which.add_argument("--all", action="store_true", help="run every level")
    which.add_argument(
        "--seed",
        type=int_at_least("--seed", 0),
        default=0,
        metavar="N",
        help="seed of the generated data (the same seed, the same data and answers)",
    )
    which.add_argument(
        "--data-dir",
        metavar="DIR",
        help="write the levels' data under DIR/levelN and keep it (default: a temporary "
        "directory, removed afterwards)",
    )
    execution = p.add_argument_group("execution")
    execution.add_argument(
        "--executor",
        choices=EXECUTORS,
        default="inline",
        help="inline: each run's own REPL, as rlm ask; process: every cell an artifact of "
        "the lakehouse's registry, run by a separate rlm-executor, as rlm-orchestrator does",
    )
    add_lakehouse_options(p)
    add_run_options(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--verbose", action="store_true", help="print every step of every run")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """The ``rlm-test`` console script; ``rlm jobs test`` calls it with its arguments."""
    from rlm_engine.cli.main import run_handler

    args = build_parser().parse_args(sys.argv[1:] if argv is None else list(argv))
    return run_handler(run_levels_command, args)


def list_text() -> str:
    """The ladder as ``--list`` prints it."""
    from rlm_engine.jobs.levels import LEVELS

    width = max(len(level.name) for level in LEVELS)
    lines = [f"{'level':5}  {'name':{width}}  exercises"]
    lines += [f"{lv.number:5}  {lv.name:{width}}  {lv.exercises}" for lv in LEVELS]
    return "\n".join(lines)


def _chosen(args: argparse.Namespace) -> tuple[Level, ...]:
    from rlm_engine.jobs.levels import LEVELS, select

    if args.all and args.level:
        raise ConfigurationError("--all and --level both choose levels", hint="give one of them")
    if args.all:
        return LEVELS
    if not args.level:
        raise ConfigurationError(
            "no level chosen",
            hint="pass --level N (or 1-4), --all, or --list to see the ladder",
        )
    return select(str(args.level))


def _with_model(args: argparse.Namespace) -> argparse.Namespace:
    """``args`` with the simulator as root and sub-model when no ``--model`` is given (a
    sub-model from the environment must not grade the oracle's requests)."""
    if args.model:
        return args
    values = dict(vars(args), model=SIMULATOR, sub_model=args.sub_model or SIMULATOR)
    return argparse.Namespace(**values)


def run_levels_command(args: argparse.Namespace) -> int:
    """``rlm-test``'s handler: list the ladder, or run the chosen levels and report."""
    if args.list:
        if args.json:
            from rlm_engine.jobs.levels import LEVELS

            rows = [
                {"level": lv.number, "name": lv.name, "exercises": lv.exercises} for lv in LEVELS
            ]
            print(json.dumps({"levels": rows}, ensure_ascii=False))
        else:
            print(list_text())
        return EXIT_ALL_PASSED
    if args.context:
        raise ConfigurationError(
            "test levels bring their own data; --context is not used",
            hint="drop --context; use --data-dir DIR to keep the generated data",
        )
    levels = _chosen(args)
    args = _with_model(args)
    if args.data_dir:
        outcomes = _run_all(levels, args, Path(args.data_dir).expanduser())
    else:
        with tempfile.TemporaryDirectory(prefix="rlm-test-") as scratch:
            outcomes = _run_all(levels, args, Path(scratch))
    _report(outcomes, args)
    return EXIT_ALL_PASSED if all(o.passed for o in outcomes) else EXIT_SOME_FAILED


def _run_all(
    levels: Sequence[Level], args: argparse.Namespace, data_dir: Path
) -> list[LevelOutcome]:
    from rlm_engine.cli.store_access import cli_store
    from rlm_engine.jobs.levels.runner import run_level
    from rlm_engine.settings import Settings

    settings = Settings.from_env()
    artifacts = _artifact_lakehouse(args)
    outcomes: list[LevelOutcome] = []
    with cli_store(settings) as store:
        for level in levels:
            outcome = run_level(
                level, args, settings, store, data_dir=data_dir, seed=args.seed, artifacts=artifacts
            )
            outcomes.append(outcome)
            if not args.json:
                print(_line(outcome), flush=True)
    return outcomes


def _artifact_lakehouse(args: argparse.Namespace) -> str | None:
    """Where ``--executor process`` keeps the artifacts: the lakehouse the job settings
    name (``--lakehouse``, ``RLM_LAKEHOUSE``, else under ``RLM_HOME``); None inline."""
    if args.executor != "process":
        return None
    from rlm_engine.jobs.settings import JobSettings

    job = JobSettings.from_env().with_flags(args)
    job.require_local()
    lake = job.lake()
    lake.ensure("artifact_registry")
    return lake.root


def _line(outcome: LevelOutcome) -> str:
    mark = "PASS" if outcome.passed else "FAIL"
    answer = outcome.answer if len(outcome.answer) <= 200 else outcome.answer[:197] + "..."
    text = (
        f"{mark}  level {outcome.number} {outcome.name}: answer {answer!r}, "
        f"expected {outcome.expected!r}"
    )
    if not outcome.passed and outcome.reason:
        text += f"\n      why: {outcome.reason} (run {outcome.run_id})"
    return text


def _report(outcomes: Sequence[LevelOutcome], args: argparse.Namespace) -> None:
    passed = sum(1 for o in outcomes if o.passed)
    if args.json:
        data = {
            "model": args.model,
            "sub_model": args.sub_model or args.model,
            "seed": args.seed,
            "passed": passed == len(outcomes),
            "levels": [o.to_json() for o in outcomes],
        }
        print(json.dumps(data, ensure_ascii=False))
        return
    print(f"{passed} of {len(outcomes)} level(s) passed with {args.model}")
    if args.model.startswith(SIMULATOR):
        print(
            "(the simulator's oracle answers from each level's ground truth: this measures "
            "the engine, not a model)"
        )


if __name__ == "__main__":
    sys.exit(main())
