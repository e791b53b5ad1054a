"""The artifact registry: one row per cell run as an artifact, its files beside it.

A row (the lakehouse table ``artifact_registry``) says what the artifact is and how far
it got; its files live under ``files_root / session_id / artifact_id``: ``code.py``
(written before the row, so a row never names missing code), then what the executor
leaves: ``result.json``, ``stdout.txt``, ``stderr.txt``, ``namespace.in`` /
``namespace.out`` (the REPL's variables before and after) and ``cell.ipynb``. The keys in
the row are paths relative to ``files_root``, as object keys would be in a volume.

Status only moves forward: ``pending`` (created by the orchestrator) -> ``executing`` (set
by the executor, with its pid and host) -> ``completed`` or ``failed``. A finished row is
never moved back, so a resumed run can trust it and not run the artifact again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from rlm_engine.errors import ConfigurationError, RLMError

if TYPE_CHECKING:
    from rlm_engine.integrations.tables import TableStore
    from rlm_engine.jobs.artifact_files import ArtifactFiles

ArtifactStatus = Literal["pending", "executing", "completed", "failed"]
TERMINAL: frozenset[str] = frozenset({"completed", "failed"})
TABLE = "artifact_registry"
CODE_FILE = "code.py"
RESULT_FILE = "result.json"
STDOUT_FILE = "stdout.txt"
STDERR_FILE = "stderr.txt"
NAMESPACE_IN = "namespace.in"
NAMESPACE_OUT = "namespace.out"
NOTEBOOK_FILE = "cell.ipynb"
_STATUSES = ("pending", "executing", "completed", "failed")
# A matched row is updated only while unfinished, or to restate its own final status
# (the orchestrator notes when it consumed a result).
_FORWARD_ONLY = "t.status NOT IN ('completed', 'failed') OR t.status = s.status"


class ArtifactNotFound(ConfigurationError):
    """No registry row has this artifact id (a wrong id, or another lakehouse)."""


@dataclass(frozen=True, slots=True)
class Artifact:
    """One row of ``artifact_registry`` (timestamps as epoch seconds)."""

    artifact_id: str
    session_id: str
    invocation_id: str
    iteration: int
    artifact_type: str
    status: ArtifactStatus
    created_time: float
    sublm_instruction: str | None = None
    code_artifact_key: str | None = None
    stdout_artifact_key: str | None = None
    stderr_artifact_key: str | None = None
    metadata_json: str | None = None
    updated_time: float | None = None
    consumed_time: float | None = None

    @property
    def metadata(self) -> dict[str, Any]:
        """``metadata_json`` parsed ({} when empty or not an object)."""
        if not self.metadata_json:
            return {}
        try:
            value = json.loads(self.metadata_json)
        except ValueError:
            return {}
        return cast(dict[str, Any], value) if isinstance(value, dict) else {}

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    def row(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Artifact:
        status = str(row.get("status") or "pending")
        if status not in _STATUSES:
            raise RLMError(f"artifact {row.get('artifact_id')!r} has an unknown status {status!r}")
        iteration = row.get("iteration")

        def text(name: str) -> str | None:
            value = row.get(name)
            return None if value is None else str(value)

        def stamp(name: str) -> float | None:
            value = row.get(name)
            return None if value is None else float(value)

        return cls(
            artifact_id=str(row["artifact_id"]),
            session_id=str(row.get("session_id") or ""),
            invocation_id=str(row.get("invocation_id") or ""),
            iteration=int(iteration) if iteration is not None else 0,
            artifact_type=str(row.get("artifact_type") or "cell"),
            status=status,
            created_time=stamp("created_time") or 0.0,
            sublm_instruction=text("sublm_instruction"),
            code_artifact_key=text("code_artifact_key"),
            stdout_artifact_key=text("stdout_artifact_key"),
            stderr_artifact_key=text("stderr_artifact_key"),
            metadata_json=text("metadata_json"),
            updated_time=stamp("updated_time"),
            consumed_time=stamp("consumed_time"),
        )


_COLUMNS = frozenset(f.name for f in fields(Artifact))
_FIXED = frozenset({"artifact_id", "session_id", "status", "created_time"})


def _local_root(value: str | Path) -> Path:
    text = str(value)
    if "://" in text and not text.startswith("file://"):
        raise ConfigurationError(
            f"artifact files need a local directory, not {text!r}",
            hint="pass files_root= a local or mounted path (a Volume's /Volumes/... path)",
        )
    return Path(text.removeprefix("file://"))


class ArtifactRegistry:
    """The registry rows in ``lake`` and the artifacts' files under ``files_root``
    (default ``lake.root + "/artifacts"``), or in ``files`` (a Volume) when given."""

    def __init__(
        self,
        lake: TableStore,
        files_root: Path | str | None = None,
        *,
        files: ArtifactFiles | None = None,
    ) -> None:
        from rlm_engine.jobs.artifact_files import LocalArtifactFiles

        self.lake = lake
        if files is not None:
            self.files: ArtifactFiles = files
            self.files_root = Path(files.local_root() or files.root)
        else:
            self.files_root = _local_root(files_root or f"{lake.root}/artifacts")
            self.files = LocalArtifactFiles(self.files_root)
        self._sessions: dict[str, str] = {}

    # -- rows ---------------------------------------------------------------------------

    def get(self, artifact_id: str) -> Artifact | None:
        rows = self.lake.read(TABLE, where={"artifact_id": artifact_id})
        if not rows:
            return None
        artifact = Artifact.from_row(rows[0])
        self._sessions[artifact_id] = artifact.session_id
        return artifact

    def create(
        self,
        artifact_id: str,
        *,
        session_id: str,
        invocation_id: str,
        iteration: int,
        code: str,
        artifact_type: str = "cell",
        sublm_instruction: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Artifact:
        """The row of ``artifact_id``, created ``pending`` with its ``code.py`` if it does
        not exist yet (an existing row is returned as it is)."""
        existing = self.get(artifact_id)
        if existing is not None:
            return existing
        if not artifact_id or "/" in artifact_id or artifact_id in (".", ".."):
            raise ConfigurationError(f"{artifact_id!r} is not a usable artifact id")
        self._sessions[artifact_id] = session_id
        self.files.write_bytes(self.key(artifact_id, CODE_FILE), code.encode("utf-8"))
        now = time.time()
        artifact = Artifact(
            artifact_id=artifact_id,
            session_id=session_id,
            invocation_id=invocation_id,
            iteration=iteration,
            artifact_type=artifact_type,
            status="pending",
            created_time=now,
            sublm_instruction=sublm_instruction,
            code_artifact_key=self.key(artifact_id, CODE_FILE),
            metadata_json=json.dumps(dict(metadata or {}), sort_keys=True),
            updated_time=now,
        )
        self.lake.merge(TABLE, [artifact.row()], update_when="t.status = 'pending'")
        return artifact

    def mark(
        self,
        artifact_id: str,
        status: ArtifactStatus,
        *,
        metadata: Mapping[str, Any] | None = None,
        **columns: Any,
    ) -> Artifact:
        """Move the row to ``status`` and set ``columns`` (``metadata`` is merged into
        ``metadata_json``). A finished row keeps its status: marking it as something else
        returns it unchanged; restating its status may set columns (``consumed_time``)."""
        if status not in _STATUSES:
            raise ConfigurationError(f"unknown artifact status {status!r}; use one of {_STATUSES}")
        unknown = sorted(set(columns) - (_COLUMNS - _FIXED))
        if unknown:
            raise ConfigurationError(
                f"the artifact registry has no column(s) {', '.join(unknown)}",
                hint=f"columns: {', '.join(sorted(_COLUMNS - _FIXED))}",
            )
        current = self.get(artifact_id)
        if current is None:
            raise ArtifactNotFound(
                f"artifact {artifact_id!r} is not in the registry",
                hint="create it first (ArtifactRegistry.create), or check the lakehouse path",
            )
        if current.finished and status != current.status:
            return current
        row = current.row() | columns
        row["status"] = status
        row["updated_time"] = time.time()
        if metadata:
            row["metadata_json"] = json.dumps(current.metadata | dict(metadata), sort_keys=True)
        self.lake.merge(TABLE, [row], update_when=_FORWARD_ONLY)
        return Artifact.from_row(row)

    # -- files --------------------------------------------------------------------------

    def key(self, artifact_id: str, name: str) -> str:
        """The key of the artifact's file ``name``, relative to ``files_root``."""
        return f"{self._session_of(artifact_id)}/{artifact_id}/{name}"

    def path(self, key: str) -> Path:
        """The file a registry key names."""
        return self.files_root / key

    def dir_for(self, artifact_id: str) -> Path:
        """``files_root / session_id / artifact_id``: the artifact's files."""
        return self.files_root / self._session_of(artifact_id) / artifact_id

    def _session_of(self, artifact_id: str) -> str:
        session = self._sessions.get(artifact_id)
        if session is None:
            found = self.get(artifact_id)
            if found is None:
                raise ArtifactNotFound(f"artifact {artifact_id!r} is not in the registry")
            session = found.session_id
        return session
