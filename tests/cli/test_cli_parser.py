"""The parser `rlm <command> ...` builds holds that command only, and agrees with the full
one. Flag values are checked by the parser: the flag's name and its range in the message,
exit status 2 with the usage line; every flag has a help string that shows its default;
`rlm --version`; and `RLMConfig`'s own errors name the keyword and its range."""

from __future__ import annotations

import argparse
from importlib.metadata import version
from typing import cast

import pytest

from rlm_engine.cli.main import COMMAND_MODULES, COMMANDS, build_parser, main
from rlm_engine.engine.config import RLMConfig
from rlm_engine.errors import ConfigurationError


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


ASK = ["ask", "what?"]

# flag, a bad value, what the message must say
BAD_VALUES = [
    ("--budget-usd", "-1", "--budget-usd must be > 0, got -1"),
    ("--budget-usd", "0", "--budget-usd must be > 0"),
    ("--budget-usd", "nan", "--budget-usd must be a finite number"),
    ("--budget-usd", "lots", "--budget-usd must be a number, got 'lots'"),
    ("--max-seconds", "0", "--max-seconds must be > 0"),
    ("--cell-timeout", "-5", "--cell-timeout must be > 0"),
    ("--max-sub-calls", "-1", "--max-sub-calls must be >= 0"),
    ("--max-iterations", "0", "--max-iterations must be >= 1"),
    ("--max-iterations", "2.5", "--max-iterations must be an integer, got '2.5'"),
    ("--max-depth", "0", "--max-depth must be >= 1"),
    ("--max-concurrency", "0", "--max-concurrency must be >= 1"),
    ("--max-tokens", "0", "--max-tokens must be >= 1"),
    ("--max-output-chars", "10", "--max-output-chars must be >= 200"),
    ("--max-output-tokens", "0", "--max-output-tokens must be >= 1"),
    ("--sub-max-output-tokens", "0", "--sub-max-output-tokens must be >= 1"),
    ("--temperature", "2.5", "--temperature must be between 0 and 2, got 2.5"),
    ("--temperature", "-0.1", "--temperature must be between 0 and 2"),
    ("--sub-temperature", "3", "--sub-temperature must be between 0 and 2"),
    ("--base-url", "localhost:8000", "--base-url must be an http:// or https:// URL"),
    ("--api-key-env", "sk-abc123", "--api-key-env takes the NAME of an environment variable"),
    ("--encoding", "klingon", "--encoding must name a text encoding"),
]

# flag, a good value, the parsed value
GOOD_VALUES = [
    ("--budget-usd", "0.5", 0.5),
    ("--max-seconds", "1e3", 1000.0),
    ("--max-sub-calls", "0", 0),
    ("--max-iterations", "1", 1),
    ("--max-concurrency", "1", 1),
    ("--max-tokens", "100000", 100_000),
    ("--max-output-chars", "200", 200),
    ("--temperature", "0", 0.0),
    ("--temperature", "2", 2.0),
    ("--base-url", "http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1"),
    ("--api-key-env", "MY_PROVIDER_KEY", "MY_PROVIDER_KEY"),
    ("--encoding", "Latin-1", "iso8859-1"),
]


@pytest.mark.parametrize(("flag", "value", "message"), BAD_VALUES)
def test_a_bad_flag_value_exits_2_naming_the_flag_and_its_range(
    flag: str, value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([*ASK, f"{flag}={value}"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "usage: rlm ask" in err
    assert f"rlm ask: error: {message}" in err
    assert "RLMConfig" not in err and "Traceback" not in err


@pytest.mark.parametrize(("flag", "value", "parsed"), GOOD_VALUES)
def test_a_value_in_range_parses(flag: str, value: str, parsed: object) -> None:
    args = build_parser("ask").parse_args([*ASK, flag, value])
    assert getattr(args, flag.removeprefix("--").replace("-", "_")) == parsed


def parsers_of(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    """Every (sub-)command's parser, named like ``rlm runs list``."""
    found = [(parser.prog, parser)]
    for action in parser._actions:  # pyright: ignore[reportPrivateUsage]
        if action.dest.endswith("command"):  # the sub-commands
            choices = cast("dict[str, argparse.ArgumentParser]", action.choices)
            for child in choices.values():
                found += parsers_of(child)
    return found


ALL = [pytest.param(prog, parser, id=prog) for prog, parser in parsers_of(build_parser())]


@pytest.mark.parametrize(("prog", "parser"), ALL)
def test_every_flag_has_a_help_string(prog: str, parser: argparse.ArgumentParser) -> None:
    missing = [
        "/".join(action.option_strings) or action.dest
        for action in parser._actions  # pyright: ignore[reportPrivateUsage]
        if not action.help and not isinstance(action, argparse._SubParsersAction)  # pyright: ignore[reportPrivateUsage]
    ]
    assert missing == [], f"{prog}: flags without help: {missing}"


def test_help_shows_the_defaults() -> None:
    text = " ".join(commands_of(build_parser())["ask"].format_help().split())
    for shown in (
        "turns before the run stops without an answer (default: 30)",
        "sub-calls in flight at once (default: 32)",
        "seconds one REPL cell may run (default: 120.0)",
        "shown to the root model (default: 20000)",
        "refuse them, or load them as bytes (default: refuse)",
    ):
        assert shown in text


def test_version_prints_the_engine_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"rlm-engine {version('rlm-engine')}"


@pytest.mark.parametrize(
    ("keyword", "value", "message"),
    [
        ("max_iterations", 0, "max_iterations must be >= 1, got 0"),
        ("max_sub_calls", -1, "max_sub_calls must be >= 0, got -1"),
        ("max_cost_usd", -1.0, "max_cost_usd must be > 0, got -1.0"),
        ("max_seconds", 0, "max_seconds must be > 0, got 0"),
        ("max_output_chars", 50, "max_output_chars must be >= 200, got 50"),
        ("capsule_share", 2.0, "capsule_share must be in (0, 1], got 2.0"),
        ("output_mode", "loud", "output_mode must be 'truncate' or 'digest', got 'loud'"),
    ],
)
def test_rlm_config_errors_name_the_keyword_and_its_range(
    keyword: str, value: object, message: str
) -> None:
    with pytest.raises(ConfigurationError) as error:
        RLMConfig(**{keyword: value})  # pyright: ignore[reportArgumentType]
    assert message in str(error.value)
