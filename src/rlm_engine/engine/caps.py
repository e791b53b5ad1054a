"""Size caps the host enforces on what a cell sends: sub-call prompts and final answers.

Sizes are measured without copying the text: a hostile prompt of hundreds of megabytes
must not be duplicated by the check that refuses it.
"""

from __future__ import annotations

from rlm_engine.errors import RLMError
from rlm_engine.lm.tokens import estimate_tokens

_CHUNK_CHARS = 1 << 20


class CapExceeded(RLMError):
    """Something a cell sent is larger than a cap allows; nothing was sent on.

    ``cap`` names the setting (``max_prompt_bytes``, ``sub_context_tokens``,
    ``max_answer_bytes``); the message tells the cell how to get under it."""

    def __init__(self, cap: str, message: str) -> None:
        super().__init__(message, hint=f"raise the {cap} setting, or send smaller pieces")
        self.cap = cap


def utf8_size(text: str, stop_above: int) -> int:
    """Bytes of ``text`` as UTF-8, exact up to ``stop_above``; above it, a lower bound.

    A character is at least one byte, so a text longer than the cap is over it without
    encoding anything; shorter non-ASCII text is encoded a chunk at a time."""
    if len(text) > stop_above or text.isascii():
        return len(text)
    return sum(
        len(text[i : i + _CHUNK_CHARS].encode("utf-8", "surrogatepass"))
        for i in range(0, len(text), _CHUNK_CHARS)
    )


def check_prompt(prompt: str, *, max_bytes: int, window_tokens: int | None, what: str) -> None:
    """Raise ``CapExceeded`` if ``prompt`` is over the byte cap or the model's window."""
    size = utf8_size(prompt, max_bytes)
    if size > max_bytes:
        raise CapExceeded(
            "max_prompt_bytes",
            f"{what} was refused before it was sent: the prompt is {size:,} bytes or more, "
            f"above the cap of {max_bytes:,} bytes. Split the text into chunks (a slice of "
            "the context per call) and send them with llm_query_batched, then combine the "
            "answers",
        )
    if window_tokens is None:
        return
    tokens = estimate_tokens(prompt)
    if tokens > window_tokens:
        chunk_chars = window_tokens * 3  # about three quarters of the window per chunk
        raise CapExceeded(
            "sub_context_tokens",
            f"{what} was refused before it was sent: the prompt is about {tokens:,} "
            f"tokens, above the sub-model's window of {window_tokens:,}. Split the text "
            f"into chunks of at most {chunk_chars:,} characters and send them with "
            "llm_query_batched, then combine the answers",
        )


def answer_refusal(kind: str, answer: str, max_bytes: int) -> str | None:
    """Why a FINAL/SUBMIT is refused for its size (the root reads it), or ``None``."""
    size = utf8_size(answer, max_bytes)
    if size <= max_bytes:
        return None
    call = "SUBMIT(...)" if kind == "submit" else "FINAL(...)"
    what = "the SUBMIT fields are" if kind == "submit" else "the answer is"
    return (
        f"{call} was refused: {what} {size:,} bytes or more, above the cap of "
        f"{max_bytes:,} bytes (max_answer_bytes). Answer with a summary or the part that "
        f"was asked for, keep the full text in a variable, and call {call} again"
    )
