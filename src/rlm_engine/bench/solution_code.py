"""Building blocks of the REPL code the oracle writes as the root model.

The code is what a careful root model would write: chunk the context on record
boundaries, fan out with ``llm_query_batched``, aggregate in plain Python, and finish with
``FINAL_VAR``. It runs inside the sandbox, so it imports nothing from this package.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from rlm_engine.sim.oracle_protocol import CLASSIFY_PROMPT, FACT_PROMPT, NOT_FOUND

# Chunk size: at least 8k characters, at most 100k, and about eight chunks per context,
# so every size exercises the batched fan-out.
CHUNK_SIZE_CODE = "CHUNK = max(8_000, min(100_000, {total} // 8))\n"

PACK_CODE = '''\
def pack(pieces, limit):
    """Group pieces (lines, documents, files) into chunks of at most `limit` characters."""
    chunks, current, size = [], [], 0
    for piece in pieces:
        if current and size + len(piece) > limit:
            chunks.append(current)
            current, size = [], 0
        current.append(piece)
        size += len(piece)
    if current:
        chunks.append(current)
    return chunks
'''

ASK_FACT_CODE = f'''\
from collections import Counter

FACT_PROMPT = {FACT_PROMPT!r}

def ask_fact(question, texts):
    """Ask every chunk of text; the most common answer that is not {NOT_FOUND}."""
    replies = llm_query_batched([FACT_PROMPT.format(question=question, text=t) for t in texts])
    found = [r.strip() for r in replies if r.strip() and r.strip().upper() != {NOT_FOUND!r}]
    print(f"{{question!r}}: {{len(texts)}} chunks, answers {{found[:5]}}")
    return Counter(found).most_common(1)[0][0] if found else "not found"
'''

CLASSIFY_CODE = f'''\
CLASSIFY_PROMPT = {CLASSIFY_PROMPT!r}

def classify(items, categories, limit):
    """Label every item with one category through batched sub-calls."""
    batches = pack([f"{{i + 1}}. {{item}}\\n" for i, item in enumerate(items)], limit)
    prompts = [
        CLASSIFY_PROMPT.format(categories=", ".join(categories), items="".join(batch))
        for batch in batches
    ]
    labels = {{}}
    for reply in llm_query_batched(prompts):
        for line in reply.splitlines():
            number, sep, label = line.partition(":")
            if sep and number.strip().isdigit():
                labels[int(number) - 1] = label.strip().strip("`'\\"").lower()
    print(f"classified {{len(labels)}} of {{len(items)}} items in {{len(prompts)}} sub-calls")
    return [labels.get(i, "unknown") for i in range(len(items))]
'''


def function_source(fn: Callable[..., Any]) -> str:
    """The source of a self-contained module-level function, to define it in the REPL."""
    return inspect.getsource(fn)


def finish(expression: str) -> str:
    """Assign the answer and end the run with ``FINAL_VAR``."""
    return f"answer = {expression}\nprint('answer:', str(answer)[:500])\nFINAL_VAR('answer')\n"
