"""Flag value types shared by the ``rlm`` commands, and the parser class they all use.

Each type checks one flag's range while argparse parses it, so a bad value ends with the
usage line and a message naming the flag and what it accepts (``--budget-usd must be > 0,
got -1``), never with an ``RLMConfig`` field name from deep inside a run. Stdlib only:
building the parser must stay cheap.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any


class HelpFormatter(argparse.HelpFormatter):
    """Appends ``(default: X)`` to a flag's help when it has a default worth showing (not
    None, False or empty) and the help does not already say it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default: Any = action.default
        if (
            "%(default)" in text
            or "default" in text.lower()
            or not action.option_strings
            or default is argparse.SUPPRESS
            or default is None
            or default is False
            or default in ([], "")
        ):
            return text
        return f"{text} (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """`argparse.ArgumentParser` with `HelpFormatter`; sub-parsers inherit the class."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> Any:
        # argparse prefixes a type's message with "argument --flag: "; ours name the flag
        # already, so the user reads "--budget-usd must be > 0, got -1" once.
        head, sep, rest = message.partition(": ")
        names = head.removeprefix("argument ").split("/")
        if sep and head.startswith("argument ") and rest.split(" ", 1)[0] in names:
            message = rest
        super().error(message)


class VersionAction(argparse.Action):
    """``--version``: prints the installed engine's version (looked up only when asked)."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kw: Any):
        kw.setdefault("help", "print the engine's version and exit")
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kw)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        from rlm_engine import __version__

        print(f"rlm-engine {__version__}")
        parser.exit()


def _number(flag: str, raw: str, kind: Callable[[str], float]) -> float:
    try:
        value = kind(raw)
    except ValueError:
        noun = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"{flag} must be {noun}, got {raw!r}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{flag} must be a finite number, got {raw!r}")
    return value


def int_at_least(flag: str, low: int) -> Callable[[str], int]:
    """An integer flag ``>= low``."""

    def parse(raw: str) -> int:
        value = int(_number(flag, raw, int))
        if value < low:
            raise argparse.ArgumentTypeError(f"{flag} must be >= {low}, got {raw}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


def positive_float(flag: str) -> Callable[[str], float]:
    """A number flag ``> 0``."""

    def parse(raw: str) -> float:
        value = _number(flag, raw, float)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{flag} must be > 0, got {raw}")
        return value

    parse.__name__ = "number > 0"
    return parse


def float_between(flag: str, low: float, high: float) -> Callable[[str], float]:
    """A number flag in ``[low, high]``."""

    def parse(raw: str) -> float:
        value = _number(flag, raw, float)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"{flag} must be between {low:g} and {high:g}, got {raw}"
            )
        return value

    parse.__name__ = f"number in [{low:g}, {high:g}]"
    return parse


def temperature(flag: str) -> Callable[[str], float]:
    """A sampling temperature: 0 (deterministic) to 2, the range providers accept."""
    return float_between(flag, 0.0, 2.0)


def env_var_name(flag: str) -> Callable[[str], str]:
    """The NAME of an environment variable (never its value): letters, digits, ``_``."""

    def parse(raw: str) -> str:
        name = raw.strip()
        if not name or name[0].isdigit() or not all(c.isalnum() or c == "_" for c in name):
            raise argparse.ArgumentTypeError(
                f"{flag} takes the NAME of an environment variable (like MY_API_KEY), "
                f"got {raw!r}; the key itself never goes on the command line"
            )
        return name

    parse.__name__ = "environment variable name"
    return parse


def http_url(flag: str) -> Callable[[str], str]:
    """An ``http://`` or ``https://`` URL."""

    def parse(raw: str) -> str:
        url = raw.strip()
        scheme, sep, rest = url.partition("://")
        if not sep or scheme.lower() not in ("http", "https") or not rest.strip("/"):
            raise argparse.ArgumentTypeError(
                f"{flag} must be an http:// or https:// URL, got {raw!r}"
            )
        return url

    parse.__name__ = "URL"
    return parse


def encoding_name(flag: str) -> Callable[[str], str]:
    """A text encoding Python knows (``utf-8``, ``latin-1``, ``cp1252``, ...)."""

    def parse(raw: str) -> str:
        import codecs

        try:
            return codecs.lookup(raw).name
        except LookupError:
            raise argparse.ArgumentTypeError(
                f"{flag} must name a text encoding (utf-8, latin-1, cp1252, ...), got {raw!r}"
            ) from None

    parse.__name__ = "encoding"
    return parse


def port(flag: str) -> Callable[[str], int]:
    """A TCP port, 0 (any free one) to 65535."""
    check = int_at_least(flag, 0)

    def parse(raw: str) -> int:
        value = check(raw)
        if value > 65535:
            raise argparse.ArgumentTypeError(f"{flag} must be between 0 and 65535, got {raw}")
        return value

    parse.__name__ = "port"
    return parse
