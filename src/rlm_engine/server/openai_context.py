"""A chat request's question and context.

The question is the last user message's text. The context is everything else the
conversation carries: the other messages' content and every ``file`` content part
(inline ``file_data``), or the uploaded context a ``file_id`` (a session id) or the
request's ``session_id`` names. One piece alone is the context exactly as sent (a long
document in a system message reaches the run byte for byte); several are joined into one
text, each under a header naming where it came from.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from rlm_engine.errors import RLMError
from rlm_engine.server.openai_schemas import ChatMessage, ContentPart


class ChatRequestError(RLMError):
    """The messages cannot be read as a question over a context."""

    hint = (
        "send the question as the last user message; give the context as other messages, "
        "file parts (base64 file_data) or a session_id"
    )


@dataclass(frozen=True, slots=True)
class Piece:
    """One part of the context: a message's text or an attached file's bytes."""

    label: str
    data: bytes
    filename: str | None = None


@dataclass(frozen=True, slots=True)
class Conversation:
    question: str
    pieces: tuple[Piece, ...]
    sessions: tuple[str, ...]
    """Uploaded contexts named by ``file_id``."""


def _file_bytes(data: str) -> bytes:
    """The bytes of ``file_data``: a ``data:`` URL or bare base64."""
    payload = data
    if data.startswith("data:"):
        header, comma, payload = data.partition(",")
        if not comma:
            raise ChatRequestError("a file part's data: URL has no data")
        if ";base64" not in header:
            return payload.encode("utf-8")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ChatRequestError(f"a file part's file_data is not base64: {exc}") from exc


def _parts(message: ChatMessage) -> list[ContentPart]:
    content = message.content
    if content is None:
        return []
    if isinstance(content, str):
        return [ContentPart(type="text", text=content)]
    return content


def _read(
    message: ChatMessage, pieces: list[Piece], sessions: list[str], *, text_too: bool
) -> list[str]:
    """The message's texts; its files go to ``pieces`` / ``sessions`` (and, with
    ``text_too``, its texts to ``pieces`` as well)."""
    texts: list[str] = []
    for part in _parts(message):
        if part.type in ("text", "input_text"):
            texts.append(part.text or "")
        elif part.type == "file" and part.file is not None:
            if part.file.file_id:
                sessions.append(part.file.file_id)
            elif part.file.file_data:
                name = part.file.filename or None
                label = f"file {name}" if name else "file"
                pieces.append(Piece(label, _file_bytes(part.file.file_data), name))
            else:
                raise ChatRequestError("a file part has neither file_data nor file_id")
        else:
            raise ChatRequestError(f"content parts of type {part.type!r} are not supported")
    text = "\n".join(t for t in texts if t)
    if text_too and text:
        pieces.append(Piece(f"{message.role} message", text.encode("utf-8")))
    return texts


def read_conversation(messages: list[ChatMessage]) -> Conversation:
    last = max((i for i, m in enumerate(messages) if m.role == "user"), default=None)
    if last is None:
        raise ChatRequestError("the request has no user message to answer")
    pieces: list[Piece] = []
    sessions: list[str] = []
    question = ""
    for index, message in enumerate(messages):
        if index == last:
            question = "\n".join(t for t in _read(message, pieces, sessions, text_too=False) if t)
        else:
            _read(message, pieces, sessions, text_too=True)
    if not question.strip():
        raise ChatRequestError("the last user message has no text to answer")
    return Conversation(question=question, pieces=tuple(pieces), sessions=tuple(sessions))


def joined(pieces: tuple[Piece, ...]) -> Piece:
    """One piece for the context: the only one as it is, or all as one text."""
    if len(pieces) == 1:
        return pieces[0]
    blocks: list[str] = []
    for piece in pieces:
        try:
            text = piece.data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ChatRequestError(
                f"{piece.label} is not UTF-8 text, so it cannot be joined with the rest",
                hint="send a binary file as the only context, or upload it as a session",
            ) from exc
        blocks.append(f"===== {piece.label} =====\n{text}")
    return Piece("conversation", "\n\n".join(blocks).encode("utf-8"))


def as_earlier_messages(question: str, pieces: tuple[Piece, ...]) -> str:
    """The question with the conversation's other messages before it (when the context
    is a session, they are not part of it)."""
    texts = [p for p in pieces if p.filename is None and p.label.endswith(" message")]
    if len(texts) != len(pieces):
        raise ChatRequestError(
            "a request over a session cannot attach files as well",
            hint="upload the files into the session, or leave out session_id",
        )
    if not texts:
        return question
    earlier = "\n\n".join(f"[{p.label}]\n{p.data.decode('utf-8')}" for p in texts)
    return f"Earlier messages in the conversation:\n{earlier}\n\nQuestion: {question}"
