"""The first cell of an exported notebook: it makes the notebook re-executable offline.

It defines `context` and stand-ins for the REPL's helpers. `llm_query`, `rlm_query` and
their batched forms return the results the run recorded, in the order the run made the
calls, so running the notebook calls no model. Under IPython a `pre_run_cell` hook selects
the recorded results of the cell about to run (matched by its code), so re-running or
skipping a cell does not shift the answers of the others; elsewhere the results are handed
out in run order. The cell also echoes a trailing expression with `print(repr(...))` and
merges stderr into stdout, as the REPL did, so re-executed outputs equal the recorded ones.

The cell is plain standard-library Python: the kernel needs nothing installed.
"""

from __future__ import annotations

import pprint
from collections.abc import Sequence
from typing import Any

# Kept as source text: this code runs in the notebook's kernel, not in this process.
_RUNTIME = '''
class _RecordedCalls:
    """Hands out the recorded sub-call results of the running cell, in call order."""

    def __init__(self, cells):
        self._cells = cells
        self._used = set()
        self._queue = [result for cell in cells for result in cell["results"]]
        self._where = "this notebook"

    def start_cell(self, source):
        """Select the results of the first not yet run recorded cell with this code."""
        self._queue, self._where = [], "a cell the run did not execute"
        for index, cell in enumerate(self._cells):
            if index not in self._used and cell["code"].strip() == source.strip():
                self._used.add(index)
                self._queue = list(cell["results"])
                self._where = "recorded cell %d" % (index + 1)
                return

    def _take(self, name):
        if not self._queue:
            raise RuntimeError(
                "%s: no recorded result left for %s; this notebook replays run %s offline "
                "and can only answer the calls the run made" % (name, self._where, RLM_RUN_ID)
            )
        return self._queue.pop(0)

    def one(self, name):
        item = self._take(name)
        if not item["ok"]:
            raise RuntimeError(item["error"])
        return item["value"]

    def many(self, name, count):
        items = [self._take(name) for _ in range(count)]
        return [i["value"] if i["ok"] else "[error: %s]" % i["error"] for i in items]


_rlm_calls = _RecordedCalls(_RLM_CELLS)
_rlm_final = {}


def llm_query(prompt, model=None):
    """The recorded answer of this sub-model call."""
    return _rlm_calls.one("llm_query")


def llm_query_batched(prompts, model=None):
    """The recorded answers of these sub-model calls, in prompt order."""
    return _rlm_calls.many("llm_query_batched", len(list(prompts)))


def rlm_query(prompt, context=None):
    """The recorded answer of this child RLM."""
    return _rlm_calls.one("rlm_query")


def rlm_query_batched(prompts, contexts=None):
    """The recorded answers of these child RLMs, in prompt order."""
    return _rlm_calls.many("rlm_query_batched", len(list(prompts)))


def FINAL(answer):
    """Record the final answer, as the run did (the cell keeps running)."""
    _rlm_final.clear()
    _rlm_final.update(kind="final", answer=str(answer))


def FINAL_VAR(name):
    """Record the value of the variable named `name` as the final answer."""
    if isinstance(name, str):
        key = name.strip()
        if key not in globals():
            raise NameError(
                "FINAL_VAR(%r): no variable named %r exists in the REPL; assign it first "
                "(e.g. %s = ...) or call FINAL(value)" % (name, key, key)
            )
        name = globals()[key]
    FINAL(name)


def SUBMIT(**fields):
    """Record named output fields."""
    _rlm_final.clear()
    _rlm_final.update(kind="submit", fields=json.loads(json.dumps(fields)))


class _VarsReport(dict):
    """What SHOW_VARS returns; not echoed a second time."""


def _describe(value):
    kind = type(value).__name__
    if isinstance(value, str):
        return "str, {:,} chars".format(len(value))
    if isinstance(value, (bytes, bytearray)):
        return "{}, {:,} bytes".format(kind, len(value))
    if type(value) is dict:
        return "dict, {:,} keys".format(len(value))
    if type(value) in (list, tuple, set, frozenset):
        return "{}, {:,} items".format(kind, len(value))
    if isinstance(value, (types.FunctionType, types.BuiltinFunctionType)):
        return "function"
    if isinstance(value, type):
        return "class"
    return kind


_IPYTHON_NAME = re.compile(r"_{1,3}|_i{1,3}|_i?[0-9]+|_[iod]h")


def SHOW_VARS():
    """Print and return your variables with short type descriptions."""
    report = _VarsReport()
    for name, value in list(globals().items()):
        if name in _RLM_BASELINE or name.startswith("__") or _IPYTHON_NAME.fullmatch(name):
            continue
        if isinstance(value, types.ModuleType):
            continue
        report[name] = _describe(value)
    if not report:
        print("(no variables yet)")
    for name, description in report.items():
        print("%s: %s" % (name, description))
    return report


memory = {}  # the run's memory lived on its host; here it starts empty


def _show(value):
    """Echo a cell's trailing expression the way the REPL did."""
    if value is not None and not isinstance(value, _VarsReport):
        print(repr(value))


try:
    _shell = get_ipython()
except NameError:  # plain Python: no hooks, results are handed out in run order
    _shell = None
if _shell is not None:
    sys.stderr = sys.stdout  # the REPL captured both streams as one
    _shell.display_trap.hook = _show
    try:  # running this cell again must not leave two hooks taking turns
        _shell.events.unregister("pre_run_cell", _rlm_hook)
    except (NameError, ValueError):
        pass

    def _rlm_hook(info):
        _rlm_calls.start_cell(info.raw_cell)

    _shell.events.register("pre_run_cell", _rlm_hook)
'''

_HEADER = """\
# Makes this notebook re-executable offline: `context` is the run's context, and the REPL's
# helpers answer from the run's journal: each llm_query / rlm_query call returns the result
# the run recorded for it, in the order the run made the calls. No model is called.
import json
import re
import sys
import types

RLM_RUN_ID = {run_id!r}


def _read_text(path):
    \"\"\"A context file as the REPL read it: UTF-8, bad bytes replaced, line ends kept.\"\"\"
    with open(path, encoding="utf-8", errors="replace", newline="") as handle:
        return handle.read()


"""

_CELLS = """
# Per executed cell: its code and the results of its sub-calls, in call order.
_RLM_CELLS = {cells}
"""

_FOOTER = """
_RLM_BASELINE = set(globals()) | {"_RLM_BASELINE", "In", "Out", "exit", "quit", "get_ipython"}
"""


def setup_cell_source(
    run_id: str, cells: Sequence[dict[str, Any]], context_lines: Sequence[str]
) -> str:
    """The source of the notebook's first cell.

    `cells` holds, per code cell of the notebook in order, `{"code": ..., "results": [...]}`
    with results as `{"ok": True, "value": str}` or `{"ok": False, "error": str}`.
    """
    literal = pprint.pformat(list(cells), width=96, sort_dicts=False)
    header = _HEADER.format(run_id=run_id)
    context = "\n".join(context_lines) + "\n"
    return header + context + _CELLS.format(cells=literal) + _RUNTIME + _FOOTER
