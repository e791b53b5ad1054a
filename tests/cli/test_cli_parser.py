"""The parser `rlm <command> ...` builds holds that command only, and agrees with the full
one."""

from __future__ import annotations

import argparse
from typing import cast

import pytest

from rlm_engine.cli.main import COMMAND_MODULES, COMMANDS, build_parser


def commands_of(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # pyright: ignore[reportPrivateUsage]
        if action.dest == "command":  # the sub-commands
            return cast("dict[str, argparse.ArgumentParser]", action.choices)
    raise AssertionError("the parser has no sub-commands")


def test_every_top_level_command_has_its_module() -> None:
    assert set(COMMAND_MODULES) == set(commands_of(build_parser()))
    assert set(COMMAND_MODULES.values()) == set(COMMANDS)


@pytest.mark.parametrize("command", sorted(COMMAND_MODULES))
def test_a_command_parser_holds_that_command_as_the_full_one_defines_it(command: str) -> None:
    alone = commands_of(build_parser(command))
    assert list(alone) == [command]
    full = commands_of(build_parser())[command]
    assert alone[command].format_help() == full.format_help()


@pytest.mark.parametrize("first", [None, "-h", "--help", "no-such-command"])
def test_anything_else_builds_the_full_parser(first: str | None) -> None:
    assert set(commands_of(build_parser(first))) == set(COMMAND_MODULES)


def test_ask_parses_the_same_alone() -> None:
    argv = ["ask", "what?", "--context", "a.txt", "--model", "openai/m", "--json"]
    alone = vars(build_parser("ask").parse_args(argv))
    full = vars(build_parser().parse_args(argv))
    assert alone == full
