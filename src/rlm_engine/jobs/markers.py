"""The markers around an artifact's output in the executor's log.

A job log holds more than the cell's output (start-up lines, warnings of the runtime), so
the executor prints the output between two lines that name the artifact. Whoever reads
the log (the orchestrator when ``result.json`` is missing, a person in the job's UI) finds
the output of one artifact, and whether it ran to success, without guessing.
"""

from __future__ import annotations

import re
from typing import Literal

MarkerStatus = Literal["success", "failed"]

START = "===RLM_EXEC_START artifact_id={id}==="
END = "===RLM_EXEC_END artifact_id={id} status={status}==="

_END_LINE = re.compile(r"^===RLM_EXEC_END artifact_id=(?P<id>\S+) status=(?P<status>\w+)===$")


def wrap(artifact_id: str, text: str, status: MarkerStatus) -> str:
    """``text`` between the start and end markers of ``artifact_id`` (ends with a newline)."""
    body = text if not text or text.endswith("\n") else text + "\n"
    start = START.format(id=artifact_id)
    end = END.format(id=artifact_id, status=status)
    return f"{start}\n{body}{end}\n"


def parse(log: str, artifact_id: str) -> tuple[str, str] | None:
    """(body, status) of the LAST complete block of ``artifact_id`` in ``log``, or None.

    The last block wins because a retried job appends a new one to the same log. A start
    marker without its end (the process died mid-cell) gives None. The body is the text
    between the marker lines, so a cell that prints a marker of another artifact cannot
    end this block early; a cell printing this artifact's own end marker can, which is why
    ``result.json`` is read first and the log is only the fallback.
    """
    start = START.format(id=artifact_id)
    lines = log.splitlines(keepends=True)
    found: tuple[str, str] | None = None
    index = 0
    while index < len(lines):
        if lines[index].rstrip("\r\n") != start:
            index += 1
            continue
        body: list[str] = []
        index += 1
        while index < len(lines):
            line = lines[index]
            match = _END_LINE.match(line.rstrip("\r\n"))
            if match is not None and match["id"] == artifact_id:
                found = ("".join(body), match["status"])
                break
            if line.rstrip("\r\n") == start:  # a new block began; this one never ended
                index -= 1
                break
            body.append(line)
            index += 1
        index += 1
    return found
