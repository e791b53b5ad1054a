"""The root model's prompts.

The system prompt and the first user message depend only on the run's settings and the
context's shape, never on what happened during the run, so the prefix of every root
request stays byte-identical across turns and provider prompt caches hit.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from rlm_engine.sandbox.base import ContextMeta

SYSTEM_PROMPT = """\
You answer a question about a context that is far too large to read directly. The context \
lives in a persistent Python REPL as the variable `context`; you never see it in this \
conversation. You work by writing Python code that the REPL runs for you. After each reply \
you will see what your code printed.

Write code in fenced blocks marked ```repl (```python works too). Variables persist between \
blocks and turns. Printed output is cut to about {max_output_chars} characters, so print \
summaries, counts and short samples, never whole chunks.

Functions available in the REPL:
- `context`: the data (its type and size are described below).
- `llm_query(prompt: str, model: str | None = None) -> str`: ask a sub-model. It can read \
about {sub_capacity_chars} characters per call, so hand it whole chunks of the context.
- `llm_query_batched(prompts: list[str], model: str | None = None) -> list[str]`: many \
sub-queries at once, run concurrently (up to {max_concurrency} in flight). Prefer this to a \
loop of `llm_query` calls: it is far faster.
- `rlm_query(prompt: str, context=None) -> str` and `rlm_query_batched(prompts, contexts=None)`: \
hand a sub-problem and its own context (str, list or dict) to a child RLM with its own REPL. \
{depth_note}
- `FINAL(answer)`: finish with this answer. `FINAL_VAR(name)`: finish with the value of the \
variable named `name` (use it for long answers built in code).
- `SUBMIT(**fields)`: finish with named fields{submit_note}.
- `SHOW_VARS()`: list your variables. `memory`: a small dict-like store that outlives \
this run.{tools_note}

Strategy:
1. Look first: print the type, length and a short sample of `context` and how it is \
structured. Do not answer before you have looked at it.
2. Chunk it (by lines, files, records or characters) into pieces a sub-model can read.
3. Query each chunk with `llm_query_batched`, asking precisely for what the question needs; \
keep the answers in a list.
4. Aggregate in code (or with one more sub-query over the buffered answers), check the \
result, then call `FINAL`. Use plain code (regex, counting, parsing) wherever it is exact \
and cheaper than a model.

Example:
```repl
lines = context.splitlines()
print(len(lines), lines[:3])
chunks = ["\\n".join(lines[i:i + 2000]) for i in range(0, len(lines), 2000)]
answers = llm_query_batched([f"List every date mentioned.\\n\\n{{c}}" for c in chunks])
print(answers[:2])
```
and in a later turn, once the answers look right: `FINAL_VAR("result")` after building \
`result`, or `FINAL("the answer")`.

A block may start with a '''triple-quoted instruction''' saying what to extract from its \
output; long outputs are then condensed by an assistant following that instruction. You \
may also finish by writing FINAL(answer) on its own line outside any code block, but only \
once you are sure. {budget_note}"""

FIRST_TURN_GUARD = (
    "You have not looked at the context yet. Start by writing code that inspects `context`; "
    "do not give a final answer yet."
)
NO_CODE_NUDGE = (
    "Your reply had no ```repl code block and no FINAL(...). Write code to make progress, or "
    "finish with FINAL(answer) / FINAL_VAR(name)."
)
STAGNATION_NUDGE = (
    "You have repeated the same step three times with the same result. Change your approach: "
    "inspect the data differently, fix the error at its cause, or finish with your best answer."
)
FORCED_FINAL = (
    "You have used every iteration. Reply now with FINAL(your best answer) on its own line "
    "(or FINAL_VAR(name) for an answer held in a variable). Do not write more code."
)


def system_prompt(
    *,
    max_output_chars: int,
    max_concurrency: int,
    can_recurse: bool,
    has_schema: bool,
    tools: Sequence[str],
    custom: str | None = None,
    sub_capacity_chars: int = 200_000,
) -> str:
    if custom is not None:
        return custom
    depth_note = (
        "Use it when a piece needs several steps of its own."
        if can_recurse
        else "At this depth it is a plain sub-model call (same as llm_query with the context "
        "appended)."
    )
    submit_note = (
        " matching the required output schema; if a field is wrong you will be told and can "
        "submit again"
        if has_schema
        else ""
    )
    tools_note = f"\n- Tools: {', '.join(f'`{t}`' for t in tools)}." if tools else ""
    return SYSTEM_PROMPT.format(
        max_output_chars=max_output_chars,
        max_concurrency=max_concurrency,
        sub_capacity_chars=sub_capacity_chars,
        depth_note=depth_note,
        submit_note=submit_note,
        tools_note=tools_note,
        budget_note="Budgets left are shown after every turn.",
    )


# How to work with the context types that are not plain Python values.
TYPE_HINTS = {
    "LargeText": (
        "`context` is a LargeText: a read-only, memory-mapped text too big to copy, used like "
        "a str (len, slices, find, count, split, splitlines, lower and `in` give str's "
        "results; positions are characters). Iterate with context.iter_lines() or "
        "context.chunks(n); use regular expressions through context.search, finditer or "
        "findall(pattern), or context.grep(pattern), not re.search(pattern, context). "
        "str(context) loads all of it."
    ),
    "Corpus": (
        "`context` is a Corpus of files: context.files() lists them, context.read(path) "
        "reads one, context.grep(regex) searches them all."
    ),
    "Table": (
        "`context` is a table (its columns and row count are below). Query it with "
        "`sql(query) -> list[dict]` (DuckDB SQL; the table is the view named below, also "
        "`context`); `sql(query, df=True)` gives a DataFrame. context.schema, "
        "context.columns, context.rows and context.sample(n) describe it. Filter and "
        "aggregate in SQL first, then hand only the rows that matter to sub-queries."
    ),
    "Tables": (
        "`context` maps table names to tables (columns and row counts below); each name "
        "is a view for `sql(query) -> list[dict]` (DuckDB SQL; joins work), "
        "`sql(query, df=True)` gives a DataFrame. context[name].schema, .rows and "
        ".sample(n) describe one. Filter and aggregate in SQL first, then hand only the "
        "rows that matter to sub-queries."
    ),
}


def describe_context(meta: ContextMeta) -> str:
    """Shape of the context for the root: type, sizes, a short preview, never the body."""
    lines = [f"Context type: {meta.type}", f"Total characters: {meta.total_chars:,}"]
    if meta.type in TYPE_HINTS:
        lines.append(TYPE_HINTS[meta.type])
    if meta.files:
        lines.append(f"Files: {meta.files}")
    if meta.chunk_lengths:
        shown = list(meta.chunk_lengths[:20])
        more = len(meta.chunk_lengths) - len(shown)
        suffix = f" ... and {more} more" if more > 0 else ""
        lines.append(f"Element lengths: {shown}{suffix}")
    for key, value in meta.extra.items():
        lines.append(f"{key}: {value}")
    if meta.preview:
        lines.append(f"Preview (first characters): {json.dumps(meta.preview)}")
    return "\n".join(lines)


def first_user_message(question: str, meta: ContextMeta, output_schema: str | None) -> str:
    parts = [describe_context(meta), "", f"Question: {question}"]
    if output_schema is not None:
        parts += [
            "",
            f"Finish with SUBMIT(...) whose fields match this JSON schema:\n{output_schema}",
        ]
    return "\n".join(parts)


def turn_feedback(
    outputs: Sequence[str], question: str, budget_line: str, iteration: int, nudge: str | None
) -> str:
    """The user message after a turn: each cell's output, then the question restated."""
    blocks = [f"[cell {i + 1} output]\n{out}" for i, out in enumerate(outputs)]
    tail = [f"Budgets: {budget_line}. Iterations used: {iteration}."]
    if nudge:
        tail.append(nudge)
    tail.append(f"Remember the question: {question}")
    return "\n\n".join([*blocks, "\n".join(tail)])
