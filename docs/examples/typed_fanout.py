"""A runnable example: typed output, a host tool and concurrent sub-calls, fully offline.

The models are scripted (pre-written replies) so this runs anywhere; swap the two
`ScriptedModel(...)` arguments for model strings such as "openai/gpt-5" and
"openai/gpt-5-mini" to run it against a real provider.

    uv run python docs/examples/typed_fanout.py
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel

from rlm_engine import RLM
from rlm_engine.lm.scripted import ScriptedModel
from rlm_engine.types import Message

REVIEWS = [
    "Great battery, terrible screen.",
    "Screen cracked on day two.",
    "Battery lasts forever, love it.",
    "Shipping was slow but the screen is fine.",
]


class Verdict(BaseModel):
    complaints_about_screen: int
    most_praised: str


def department_of(topic: str) -> str:
    """A host-side tool: runs in this process, reached from the REPL by RPC."""
    return {"screen": "display team", "battery": "power team"}.get(topic, "support")


ROOT_TURNS = [
    "```repl\nprint(type(context).__name__, len(context), context[0])\n```",
    "```repl\n"
    "labels = llm_query_batched([f'Does this review complain about the screen? yes/no: {r}' "
    "for r in context])\n"
    "n = sum(a == 'yes' for a in labels)\n"
    "print(labels, n, department_of('screen'))\n```",
    "```repl\nSUBMIT(complaints_about_screen=n, most_praised='battery')\n```",
]


def root(messages: Sequence[Message]) -> str:
    return ROOT_TURNS[min(sum(m.role == "assistant" for m in messages), len(ROOT_TURNS) - 1)]


def sub(messages: Sequence[Message]) -> str:
    review = messages[-1].content.rsplit(": ", 1)[-1].lower()
    bad_screen = "screen" in review and any(w in review for w in ("terrible", "cracked"))
    return "yes" if bad_screen else "no"


def main() -> None:
    with RLM(
        ScriptedModel(root), ScriptedModel(sub), output_schema=Verdict, tools=[department_of]
    ) as rlm:
        result = rlm.run("How many reviews complain about the screen?", REVIEWS)
    print(result.fields)
    print(result.stop_reason, result.iterations, "iterations,", result.sub_calls, "sub-calls")


if __name__ == "__main__":
    main()
