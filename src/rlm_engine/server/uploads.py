"""Reading an upload as it arrives: a multipart form's file part, or a raw body.

FastAPI's `UploadFile`/`Form` read the whole body (spooling it to disk) before the handler
runs; here the body is parsed incrementally from `Request.stream()` with python-multipart's
push parser, and the file part's bytes are handed on chunk by chunk, so the service writes
them to its own file while they arrive and stops the moment they pass the limit.

A form's small fields are kept only when they come before the file (``curl -F name=x -F
file=@big.txt`` sends them in that order); the file's own name stands in for a missing
``name``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, cast

from python_multipart.exceptions import FormParserError, MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from rlm_engine.errors import RLMError

FILE_FIELD = "file"
# A form field other than the file (a name) is small; a larger one is a mistake or abuse.
MAX_FIELD_BYTES = 64 * 1024


class BadUploadError(RLMError):
    """The multipart body cannot be read as a form with a file."""

    hint = 'send multipart/form-data with the context in a field named "file"'


@dataclass
class _Part:
    headers: dict[str, str] = field(default_factory=dict[str, str])
    name: str = ""
    filename: str | None = None
    data: bytearray = field(default_factory=bytearray)


def _disposition(headers: dict[str, str]) -> tuple[str, str | None]:
    _, options = parse_options_header(headers.get("content-disposition", ""))
    name = options.get(b"name", b"").decode("utf-8", "replace")
    raw = options.get(b"filename")
    return name, (raw.decode("utf-8", "replace") if raw is not None else None)


class FormReader:
    """A multipart body read from ``body``; `fields` are the form fields before the file."""

    def __init__(self, body: AsyncIterator[bytes], content_type: str) -> None:
        _, options = parse_options_header(content_type)
        boundary = options.get(b"boundary")
        if not boundary:
            raise BadUploadError("the multipart body has no boundary")
        self._body = body
        self._done = False
        self._part = _Part()
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._file: _Part | None = None
        self._file_ended = False
        self._chunks: list[bytes] = []
        self.fields: dict[str, str] = {}
        try:
            self._parser = MultipartParser(boundary, cast(Any, self._callbacks()))
        except FormParserError as exc:  # e.g. a boundary longer than the standard allows
            raise BadUploadError(f"the multipart boundary is invalid: {exc}") from exc

    def _callbacks(self) -> dict[str, Callable[..., None]]:
        return {
            "on_part_begin": self._on_part_begin,
            "on_header_field": self._on_header_field,
            "on_header_value": self._on_header_value,
            "on_header_end": self._on_header_end,
            "on_headers_finished": self._on_headers_finished,
            "on_part_data": self._on_part_data,
            "on_part_end": self._on_part_end,
        }

    def _on_part_begin(self) -> None:
        self._part = _Part()

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field.extend(data[start:end])

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value.extend(data[start:end])

    def _on_header_end(self) -> None:
        name = self._header_field.decode("latin-1").strip().lower()
        self._part.headers[name] = self._header_value.decode("latin-1").strip()
        self._header_field.clear()
        self._header_value.clear()

    def _on_headers_finished(self) -> None:
        self._part.name, self._part.filename = _disposition(self._part.headers)
        if self._part.name == FILE_FIELD and self._file is None:
            self._file = self._part

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._part is self._file:
            self._chunks.append(bytes(data[start:end]))
            return
        self._part.data.extend(data[start:end])
        if len(self._part.data) > MAX_FIELD_BYTES:
            raise BadUploadError(f"form field {self._part.name!r} is over {MAX_FIELD_BYTES} bytes")

    def _on_part_end(self) -> None:
        if self._part is self._file:
            self._file_ended = True
        elif self._file is None and self._part.name:
            self.fields[self._part.name] = self._part.data.decode("utf-8", "replace")

    async def _push(self) -> bool:
        """Feed the parser the next piece of the body; False once the body is done."""
        if self._done:
            return False
        try:
            chunk = await anext(self._body)
        except StopAsyncIteration:
            self._done = True
            self._parse(None)
            return False
        self._parse(chunk)
        return True

    def _parse(self, chunk: bytes | None) -> None:
        """Feed ``chunk`` to the parser (None: the body is over)."""
        try:
            if chunk is None:
                self._parser.finalize()
            else:
                self._parser.write(chunk)
        except (MultipartParseError, FormParserError) as exc:
            raise BadUploadError(f"the multipart body is malformed: {exc}") from exc

    async def file_part(self) -> str | None:
        """Read up to the start of the file part; its file name ("" when none is given).
        BadUploadError when the body ends without one."""
        while self._file is None:
            if not await self._push():
                raise BadUploadError(f'the form has no field named "{FILE_FIELD}"')
        return self._file.filename

    async def file_chunks(self) -> AsyncIterator[bytes]:
        """The file part's bytes as they arrive, then the rest of the body is drained."""
        while True:
            while self._chunks:
                yield self._chunks.pop(0)
            if self._file_ended or not await self._push():
                break
        while self._chunks:
            yield self._chunks.pop(0)
        if not self._file_ended:
            raise BadUploadError("the body ended inside the file part")
        while await self._push():  # the closing boundary and any trailing fields
            self._chunks.clear()
