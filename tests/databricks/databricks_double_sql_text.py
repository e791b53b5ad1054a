"""Databricks SQL text -> DuckDB SQL text, for the double's Statement Execution API.

A small tokenizer keeps string literals, quoted identifiers and comments intact while it
rewrites what DuckDB does not speak:

- named parameter markers ``:name`` -> ``$name`` (``::`` casts are left alone), cast to the
  parameter's declared type;
- backtick identifiers -> double-quoted identifiers; double-quoted text (a string literal in
  Databricks SQL) -> a single-quoted literal;
- three-part names ``catalog.schema.table`` -> ``"catalog__schema".table`` (two-part names are
  left as DuckDB reads them: ``schema.table`` or ``alias.column``); ``CREATE SCHEMA c.s`` ->
  ``"c__s"``;
- in CREATE TABLE: ``USING DELTA``, ``PARTITIONED BY (...)``, ``CLUSTER BY (...)``,
  ``TBLPROPERTIES (...)``, ``OPTIONS (...)``, ``LOCATION '...'`` and ``COMMENT '...'`` dropped;
  ``ARRAY<T>`` -> ``T[]``;
- types: ``TIMESTAMP`` (an instant in Databricks) -> ``TIMESTAMPTZ`` (the session is UTC),
  ``TIMESTAMP_NTZ`` -> ``TIMESTAMP``, where a type is expected: a column definition, after
  ``AS`` in a CAST, after ``::``.

MERGE INTO (with ``UPDATE SET *`` / ``INSERT *``) is passed through: DuckDB >= 1.4 runs it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<comment>--[^\n]*|/\*.*?\*/)
  | (?P<single>'(?:[^'\\]|''|\\.)*')
  | (?P<double>"(?:[^"\\]|""|\\.)*")
  | (?P<backtick>`(?:[^`]|``)*`)
  | (?P<param>(?<!:):[A-Za-z_][A-Za-z0-9_]*)
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<number>\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)
  | (?P<op>::|<=|>=|<>|!=|\|\||.)
    """,
    re.VERBOSE | re.DOTALL,
)

# Databricks parameter types -> the DuckDB type a marker is cast to.
PARAM_TYPES = {
    "STRING": None,
    "VOID": None,
    "BOOLEAN": "BOOLEAN",
    "TINYINT": "TINYINT",
    "BYTE": "TINYINT",
    "SMALLINT": "SMALLINT",
    "SHORT": "SMALLINT",
    "INT": "INTEGER",
    "INTEGER": "INTEGER",
    "BIGINT": "BIGINT",
    "LONG": "BIGINT",
    "FLOAT": "FLOAT",
    "DOUBLE": "DOUBLE",
    "DATE": "DATE",
    "TIMESTAMP": "TIMESTAMPTZ",
    "TIMESTAMP_NTZ": "TIMESTAMP",
}

_TIMESTAMP_TYPES = ("TIMESTAMP", "TIMESTAMP_NTZ", "TIMESTAMP_LTZ")
_DROPPED_WITH_PARENS = ("PARTITIONED", "CLUSTER", "TBLPROPERTIES", "OPTIONS")


@dataclass(frozen=True)
class Token:
    kind: str
    text: str

    @property
    def upper(self) -> str:
        return self.text.upper()

    @property
    def is_name(self) -> bool:
        return self.kind in ("word", "backtick", "quoted")


class SqlTextError(ValueError):
    """The statement cannot be run here (shown to the client as a FAILED statement)."""


def tokenize(sql: str) -> list[Token]:
    tokens: list[Token] = []
    for match in _TOKEN.finditer(sql):
        kind = match.lastgroup or "op"
        text = match.group()
        if kind == "backtick":
            kind, text = "quoted", '"' + text[1:-1].replace("``", "`").replace('"', '""') + '"'
        elif kind == "double":
            inner = text[1:-1].replace('""', '"').replace("'", "''")
            kind, text = "single", f"'{inner}'"
        tokens.append(Token(kind, text))
    return tokens


def _significant(tokens: list[Token]) -> list[Token]:
    return [t for t in tokens if t.kind not in ("ws", "comment")]


def split_single_statement(sql: str) -> list[Token]:
    """The tokens of one statement; a trailing ``;`` is fine, a second statement is not."""
    tokens = tokenize(sql)
    while tokens and (tokens[-1].kind in ("ws", "comment") or tokens[-1].text == ";"):
        tokens.pop()
    if any(t.text == ";" for t in tokens):
        raise SqlTextError(
            "[PARSE_SYNTAX_ERROR] The Statement Execution API runs one statement per request"
        )
    if not _significant(tokens):
        raise SqlTextError("[PARSE_EMPTY_STATEMENT] the statement is empty")
    return tokens


def schema_name(catalog: str, schema: str) -> str:
    """The DuckDB schema that stands for ``catalog.schema``."""
    return f"{_bare(catalog)}__{_bare(schema)}"


def _bare(name: str) -> str:
    if name.startswith('"') and name.endswith('"'):
        return name[1:-1].replace('""', '"')
    return name


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class Rewritten:
    sql: str
    markers: tuple[str, ...]  # parameter names, in order of first use
    three_part_names: tuple[tuple[str, str, str], ...]


def rewrite(tokens: list[Token], param_types: dict[str, str | None]) -> Rewritten:
    """DuckDB text for one statement's tokens; see the module docstring."""
    return _Rewriter(tokens, param_types).run()


class _Rewriter:
    def __init__(self, tokens: list[Token], param_types: dict[str, str | None]) -> None:
        sig = _significant(tokens)
        self.tokens = tokens
        self.param_types = param_types
        self.is_create_table = _is_create(sig, "TABLE")
        self.is_create_schema = _is_create(sig, "SCHEMA") or _is_create(sig, "DATABASE")
        self.out: list[str] = []
        self.markers: list[str] = []
        self.names: list[tuple[str, str, str]] = []

    def next_sig(self, start: int, count: int = 1) -> list[int]:
        found: list[int] = []
        j = start
        while j < len(self.tokens) and len(found) < count:
            if self.tokens[j].kind not in ("ws", "comment"):
                found.append(j)
            j += 1
        return found

    def run(self) -> Rewritten:
        i = 0
        while i < len(self.tokens):
            i = self.step(i)
        return Rewritten("".join(self.out), tuple(self.markers), tuple(self.names))

    def step(self, i: int) -> int:
        token = self.tokens[i]
        if token.kind == "param":
            return self.param(i)
        if token.is_name and (not self.out or self.out[-1] != "."):
            after = self.qualified_name(i)
            if after is not None:
                return after
        if token.upper in _TIMESTAMP_TYPES and token.kind == "word" and self.in_type_position():
            self.out.append("TIMESTAMP" if token.upper == "TIMESTAMP_NTZ" else "TIMESTAMPTZ")
            return i + 1
        if self.is_create_table and token.kind == "word":
            after = self.create_table_word(i)
            if after is not None:
                return after
        self.out.append(token.text)
        return i + 1

    def in_type_position(self) -> bool:
        """After ``AS`` (a CAST), ``::``, or a column name in CREATE TABLE; before a literal."""
        previous = next((t for t in reversed(self.out) if t.strip()), "")
        if previous.upper() in ("AS", "::"):
            return True
        if self.is_create_table and previous not in ("(", ",", ".", ""):
            return re.fullmatch(r'[A-Za-z_][A-Za-z0-9_]*|".*"', previous) is not None
        return False

    def param(self, i: int) -> int:
        name = self.tokens[i].text[1:]
        if name not in self.markers:
            self.markers.append(name)
        cast = self.param_types.get(name)
        self.out.append(f"CAST(${name} AS {cast})" if cast else f"${name}")
        return i + 1

    def qualified_name(self, i: int) -> int | None:
        tokens = self.tokens
        ahead = self.next_sig(i + 1, 4)
        dots = [tokens[j].text == "." for j in ahead[0::2]]
        names = [tokens[j].is_name for j in ahead[1::2]]
        if len(ahead) == 4 and all(dots) and all(names):
            after = self.next_sig(ahead[3] + 1)
            if not (after and tokens[after[0]].text == "."):
                catalog, schema, table = (_bare(tokens[j].text) for j in (i, ahead[1], ahead[3]))
                self.names.append((catalog, schema, table))
                self.out.append(f"{_quote(schema_name(catalog, schema))}.{tokens[ahead[3]].text}")
                return ahead[3] + 1
        if (
            self.is_create_schema
            and len(ahead) >= 2
            and dots[:1] == [True]
            and names[:1] == [True]
            and tokens[i].upper not in ("EXISTS", "SCHEMA", "DATABASE")
        ):
            self.out.append(_quote(schema_name(tokens[i].text, tokens[ahead[1]].text)))
            return ahead[1] + 1
        return None

    def create_table_word(self, i: int) -> int | None:
        skipped = _skip_create_clause(self.tokens, i, self.next_sig)
        if skipped is not None:
            return skipped
        word = self.tokens[i].upper
        ahead = self.next_sig(i + 1)
        if word == "ARRAY" and ahead and self.tokens[ahead[0]].text == "<":
            close = _matching(self.tokens, ahead[0], "<", ">")
            inner = rewrite(self.tokens[ahead[0] + 1 : close], {}).sql
            self.out.append(f"{inner}[]")
            return close + 1
        return None


def _is_create(sig: list[Token], what: str) -> bool:
    words = [t.upper for t in sig[:4]]
    if not words or words[0] != "CREATE":
        return False
    rest = words[1:]
    if rest and rest[0] == "OR":
        rest = [t.upper for t in sig[3:6]]
    return bool(rest) and rest[0] == what


def _skip_create_clause(
    tokens: list[Token], i: int, next_sig: Callable[[int, int], list[int]]
) -> int | None:
    """Index after a Databricks-only CREATE TABLE clause starting at ``i``, or None."""
    word = tokens[i].upper
    ahead = next_sig(i + 1, 2)
    if word == "USING" and ahead and tokens[ahead[0]].kind == "word":
        return ahead[0] + 1  # USING DELTA / PARQUET / ...
    if word in ("LOCATION", "COMMENT") and ahead and tokens[ahead[0]].kind == "single":
        return ahead[0] + 1
    if word in _DROPPED_WITH_PARENS:
        j = ahead[0] if ahead else i + 1
        if word in ("PARTITIONED", "CLUSTER") and ahead and tokens[ahead[0]].upper == "BY":
            j = ahead[1] if len(ahead) > 1 else ahead[0] + 1
        if j < len(tokens) and tokens[j].text == "(":
            return _matching(tokens, j, "(", ")") + 1
    return None


def _matching(tokens: list[Token], start: int, open_: str, close: str) -> int:
    depth = 0
    for j in range(start, len(tokens)):
        if tokens[j].text == open_:
            depth += 1
        elif tokens[j].text == close:
            depth -= 1
            if depth == 0:
                return j
    raise SqlTextError(f"[PARSE_SYNTAX_ERROR] unbalanced {open_!r}")
