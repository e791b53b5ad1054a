"""Secrets from a Databricks secret scope, loaded at the edge of a job, and their redaction.

`load_secrets` returns the values for the caller to put into its own process environment
(provider keys, the Jira token); nothing here writes them anywhere. Every value loaded is
told to the process-wide `Redactor`, which rewrites log records as they are made, so a value
that reaches a log message, its arguments or a logged traceback shows as `[REDACTED]`.
Errors name the scope and the key, never a value. The sandbox never sees these values: it
starts with a minimal environment of its own.
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from rlm_engine.errors import ConfigurationError
from rlm_engine.integrations.databricks.workspace import workspace_error

if TYPE_CHECKING:
    from databricks.sdk import WorkspaceClient

MASK = "[REDACTED]"
MIN_LENGTH = 4
"""Shorter values are not redacted: masking every 'on' or '1' in the logs would hide more
than it protects; a real credential is longer."""


class Redactor(logging.Filter):
    """Replaces known secret values in text and in log records.

    As a `logging.Filter` it can sit on any handler; `install` also wraps the log record
    factory, so records are cleaned when they are made and every handler (including ones
    added later) sees the clean text."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._values: tuple[str, ...] = ()
        self._installed = False
        self.add(*values)

    def add(self, *values: str) -> None:
        """Redact these values from now on (longest first, so a value containing another
        is masked whole)."""
        fresh = {v for v in values if len(v) >= MIN_LENGTH}
        with self._lock:
            self._values = tuple(sorted(set(self._values) | fresh, key=len, reverse=True))

    def __len__(self) -> int:
        return len(self._values)

    def redact(self, text: str) -> str:
        for value in self._values:
            if value in text:
                text = text.replace(value, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        """Clean `record` in place (message with its arguments, traceback, stack); keeps it."""
        if not self._values:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: clean what is there
            message = f"{record.msg} {record.args}"
        record.msg, record.args = self.redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True

    def install(self) -> None:
        """Clean every log record of this process from now on (idempotent)."""
        with self._lock:
            if self._installed:
                return
            self._installed = True
        make = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = make(*args, **kwargs)
            self.filter(record)
            return record

        logging.setLogRecordFactory(factory)


REDACTOR = Redactor()
"""The process's redactor: `load_secrets` adds every value it loads."""


def redact(text: str) -> str:
    """`text` with every secret value loaded in this process masked."""
    return REDACTOR.redact(text)


class SecretNotFoundError(ConfigurationError):
    """A key the job needs is not in the secret scope."""


def load_secrets(
    w: WorkspaceClient,
    scope: str,
    keys: Sequence[str],
    *,
    missing_ok: bool = False,
    redactor: Redactor | None = None,
) -> dict[str, str]:
    """key -> value for `keys` of `scope`; each value is registered with the redactor
    (`REDACTOR` unless another is given), which is installed on first use.

    A missing key (or scope: the API answers both alike) raises `SecretNotFoundError`
    unless `missing_ok` (then it is left out); a refused request raises `WorkspaceError`."""
    from databricks.sdk.errors import NotFound

    guard = REDACTOR if redactor is None else redactor
    guard.install()
    loaded: dict[str, str] = {}
    for key in keys:
        try:
            response = w.secrets.get_secret(scope, key)
        except NotFound as exc:
            if missing_ok:
                continue
            raise SecretNotFoundError(
                f"secret {key!r} is not in the secret scope {scope!r} ({exc})",
                hint=f"add it with: databricks secrets put-secret {scope} {key} (after "
                f"databricks secrets create-scope {scope}, if the scope does not exist)",
            ) from None
        except Exception as exc:
            raise workspace_error(exc, f"reading secret {key!r} of scope {scope!r}") from None
        raw = response.value or ""
        value = _decode(raw, scope, key)
        # The SDK's debug log of the reply would show the base64 form: mask both.
        guard.add(value, raw)
        loaded[key] = value
    return loaded


def _decode(raw: str, scope: str, key: str) -> str:
    """The API sends values base64-encoded; an undecodable one is an error that does not
    quote it."""
    try:
        return base64.b64decode(raw, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise ConfigurationError(
            f"secret {key!r} of scope {scope!r} is not UTF-8 text",
            hint="store provider keys and tokens as text secrets",
        ) from None
