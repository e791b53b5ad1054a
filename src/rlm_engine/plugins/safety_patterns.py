"""Patterns of destructive operations, with severities (1 = note, 10 = never run).

They match the cell's code text, string literals included, because a destructive SQL
statement or shell command usually travels inside a string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_I = re.IGNORECASE
# A statement's remainder: up to its end, a quote or a closing parenthesis.
_REST = r"[^;'\"\)]*"


@dataclass(frozen=True, slots=True)
class SafetyPattern:
    category: str
    description: str
    severity: int
    regex: re.Pattern[str]


def _p(
    category: str, description: str, severity: int, pattern: str, flags: int = 0
) -> SafetyPattern:
    return SafetyPattern(category, description, severity, re.compile(pattern, flags))


SQL = (
    _p(
        "sql",
        "DROP of a table, view, index, function or database",
        9,
        r"\bDROP\s+(TABLE|VIEW|INDEX|FUNCTION|DATABASE|MATERIALIZED\s+VIEW)\b",
        _I,
    ),
    _p("sql", "TRUNCATE", 9, r"\bTRUNCATE\s+(TABLE\s+)?[\w`\"\[]", _I),
    _p(
        "sql",
        "DELETE without WHERE",
        8,
        rf"\bDELETE\s+FROM\s+[\w.`\"\[\]]+(?!{_REST}\bWHERE\b)",
        _I,
    ),
    _p(
        "sql",
        "UPDATE without WHERE",
        8,
        rf"\bUPDATE\s+[\w.`\"\[\]]+\s+SET\b(?!{_REST}\bWHERE\b)",
        _I,
    ),
    _p("sql", "ALTER TABLE ... DROP", 8, r"\bALTER\s+TABLE\s+\S+\s+DROP\b", _I),
    _p("sql", "VACUUM with zero retention", 9, rf"\bVACUUM\b{_REST}\bRETAIN\s+0\s+HOURS\b", _I),
    _p("sql", "GRANT ALL", 7, r"\bGRANT\s+ALL\b", _I),
    _p("sql", "REVOKE", 7, r"\bREVOKE\s+\w", _I),
)

SHELL = (
    _p(
        "shell",
        "recursive or forced rm",
        9,
        r"\brm\s+(?:-{1,2}[\w-]+\s+)*(?:-[a-zA-Z]*[rRf][a-zA-Z]*|--recursive|--force)\b",
    ),
    _p("shell", "dd", 8, r"\bdd\s+(?:if|of|bs)="),
    _p("shell", "mkfs", 10, r"\bmkfs(?:\.\w+)?\b"),
    _p("shell", "fork bomb", 10, r":\s*\(\s*\)\s*\{\s*:\s*\|\s*:\s*&\s*\}\s*;\s*:"),
    _p("shell", "write to a block device", 10, r">\s*/dev/(?:sd|hd|vd|xvd|nvme|mmcblk|disk)\w*"),
    _p(
        "shell",
        "download piped into a shell",
        9,
        r"\b(?:curl|wget)\b[^\n|]*\|\s*(?:sudo\s+)?(?:ba|z|k|da)?sh\b",
    ),
    _p(
        "shell",
        "recursive chmod/chown",
        7,
        r"\bch(?:mod|own)\s+(?:-[a-zA-Z]*R[a-zA-Z]*|--recursive)\b",
    ),
)

FILESYSTEM = (
    _p(
        "filesystem",
        "write into /etc, /boot or /sys",
        8,
        r"open\(\s*[rbf]?['\"]/(?:etc|boot|sys)/[^'\"]*['\"]\s*,\s*['\"][^'\"]*[wax+]",
    ),
    _p("filesystem", "shell redirect into /etc, /boot or /sys", 8, r">>?\s*/(?:etc|boot|sys)/"),
    _p(
        "filesystem",
        "remove a file under /etc, /boot or /sys",
        8,
        r"\b(?:os\.(?:remove|unlink|rmdir)|Path)\(\s*['\"]/(?:etc|boot|sys)\b",
    ),
    _p(
        "filesystem",
        "remove /",
        10,
        r"\b(?:shutil\.rmtree|rm\s+-\w+)\s*\(?\s*['\"]?/['\"]?\s*(?:\)|$|\s)",
    ),
)

LAKEHOUSE = (
    _p(
        "lakehouse",
        "recursive dbutils.fs.rm",
        9,
        r"dbutils\.fs\.rm\([^)]*(?:,\s*True|recurse\s*=\s*True)",
    ),
    _p("lakehouse", "spark.sql with DROP", 9, r"spark\.sql\(\s*[rf]?['\"][^'\"]*\bDROP\b", _I),
    _p("lakehouse", "unconditional .delete()", 8, r"\.delete\(\s*\)"),
    _p("lakehouse", "DROP CATALOG/SCHEMA/VOLUME", 10, r"\bDROP\s+(?:CATALOG|SCHEMA|VOLUME)\b", _I),
)

DEFAULT_PATTERNS: tuple[SafetyPattern, ...] = (*SQL, *SHELL, *FILESYSTEM, *LAKEHOUSE)
