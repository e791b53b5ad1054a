"""``rlm-executor``: the job that runs one cell artifact from the registry.

``rlm-executor --artifact-id ID`` loads the artifact's row and ``code.py``, marks it
``executing`` (with its pid and host), runs the cell in a fresh local sandbox
(``executor_run``) whose host calls go back to the orchestrator through ``--relay``,
leaves ``result.json``, ``stdout.txt``, ``stderr.txt``, ``namespace.out``, ``calls.json``
and ``cell.ipynb`` in the artifact's directory, marks the row ``completed`` (the cell
ran without error) or ``failed``, and prints the output between the markers, as a job
log shows it. An artifact that is already finished is not run again: its recorded
output is printed. ``rlm jobs execute`` takes the same arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlm_engine.jobs import markers
from rlm_engine.jobs.artifact_result import FILE_CAP_CHARS, ArtifactResult
from rlm_engine.jobs.artifacts import (
    CODE_FILE,
    NAMESPACE_IN,
    NAMESPACE_OUT,
    NOTEBOOK_FILE,
    RESULT_FILE,
    STDERR_FILE,
    STDOUT_FILE,
    ArtifactNotFound,
    ArtifactRegistry,
)
from rlm_engine.sandbox.base import HostHandler

if TYPE_CHECKING:
    from rlm_engine.jobs.artifacts import Artifact

EXIT_OK = 0
EXIT_CELL_FAILED = 1
EXIT_EXECUTOR_FAILED = 2
CALLS_FILE = "calls.json"

DESCRIPTION = (
    "Run one cell artifact from the artifact registry in a fresh sandbox: restore the "
    "variables the previous artifact left, run the code, and leave result.json, the "
    "output files and a notebook next to the artifact. Prints the output between "
    "===RLM_EXEC_START/END=== markers. Exit status: 0 the cell ran without error, 1 it "
    "raised (or timed out, or was killed), 2 the artifact is unknown or could not be run."
)


def add_executor_options(p: argparse.ArgumentParser) -> None:
    """The executor's flags (the console script and ``rlm jobs execute`` share them)."""
    from rlm_engine.jobs.args import add_lakehouse_options

    p.add_argument("--artifact-id", required=True, metavar="ID", help="the artifact to run")
    add_lakehouse_options(p)
    p.add_argument(
        "--files-root",
        metavar="PATH",
        help="where the artifacts' files live (default: LAKEHOUSE/artifacts)",
    )
    p.add_argument(
        "--relay",
        metavar="SOCKET",
        help="the orchestrator's host-call relay (a Unix socket); its token is read from "
        "the first line of stdin. Without it, llm_query and the other host calls fail",
    )
    p.add_argument(
        "--die-with-parent",
        action="store_true",
        help="end when the process that started this one ends (Linux), so an executor "
        "never outlives an orchestrator that was killed; its artifact is then run again",
    )
    p.add_argument(
        "--timeout",
        type=float,
        metavar="S",
        help="the cell's time limit in seconds (default: the artifact's, else 300)",
    )


def executor_parser(prog: str = "rlm-executor") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=DESCRIPTION)
    add_executor_options(p)
    return p


def die_with_parent() -> None:
    """Ask the kernel for SIGKILL when the parent ends (Linux ``PR_SET_PDEATHSIG``); a
    parent already gone ends this process now. Elsewhere a no-op."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
    if parent == 1 or os.getppid() != parent:  # adopted by init: the parent is gone
        os._exit(EXIT_CELL_FAILED)


def run_execute(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> int:
    """The handler of ``rlm jobs execute`` (and of the console script)."""
    from rlm_engine.jobs.settings import JobSettings

    if args.die_with_parent:
        die_with_parent()

    env = os.environ if environ is None else environ
    settings = JobSettings.from_env(env).with_flags(args)
    if settings.mode == "databricks":
        from rlm_engine.jobs.databricks_mode import run_databricks_executor

        return run_databricks_executor(settings, args.artifact_id, timeout_s=args.timeout)
    settings.require_local()
    registry = ArtifactRegistry(settings.lake(), args.files_root)
    token = sys.stdin.readline().strip() if args.relay else ""
    return execute_artifact(
        registry, args.artifact_id, relay=args.relay, token=token, timeout_s=args.timeout
    )


class _Recorder:
    """The cell's host handler: forwards each call and keeps its answer, for the
    artifact's notebook to replay."""

    def __init__(self, inner: HostHandler) -> None:
        self._inner = inner
        self.calls: list[dict[str, Any]] = []

    async def __call__(self, method: str, params: Mapping[str, Any]) -> Any:
        try:
            value = await self._inner(method, params)
        except Exception as exc:
            self.calls.append({"method": method, "error": f"{type(exc).__name__}: {exc}"})
            raise
        self.calls.append({"method": method, "value": value})
        return value


OUTPUT_FILES = (RESULT_FILE, STDOUT_FILE, STDERR_FILE, NAMESPACE_OUT, CALLS_FILE, NOTEBOOK_FILE)
"""What an executor leaves next to the artifact (copied back when the files are remote)."""


def execute_artifact(
    registry: ArtifactRegistry,
    artifact_id: str,
    *,
    relay: str | None = None,
    token: str = "",
    timeout_s: float | None = None,
    handler: HostHandler | None = None,
    prepare_meta: Callable[[dict[str, Any], Path], dict[str, Any]] | None = None,
) -> int:
    """Run the artifact (or print its recorded result if it is finished); the exit status.

    The host calls of the cell go to ``handler`` when given, else through ``relay``. When
    the registry's files are remote (a Volume), the artifact's files are copied into a
    local working folder first and its outputs copied back before the row is marked;
    ``prepare_meta`` may then rewrite the metadata for that folder (the context's files)."""
    import tempfile

    from rlm_engine.jobs.artifact_files import publish, stage_in

    artifact = registry.get(artifact_id)
    if artifact is None:
        raise ArtifactNotFound(
            f"artifact {artifact_id!r} is not in the registry at {registry.lake.root}",
            hint="check --lakehouse (or --catalog/--schema) and the artifact id",
        )
    if registry.files.local_root() is not None:
        folder = registry.dir_for(artifact_id)
        return _execute_in(registry, artifact, folder, relay, token, timeout_s, handler, None)
    prefix = f"{artifact.session_id}/{artifact_id}"
    with tempfile.TemporaryDirectory(prefix="rlm-artifact-") as tmp:
        folder = Path(tmp) / artifact_id
        stage_in(registry.files, prefix, (CODE_FILE, NAMESPACE_IN, RESULT_FILE), folder)
        meta = artifact.metadata
        if prepare_meta is not None:
            meta = prepare_meta(meta, Path(tmp) / "contexts")

        def upload() -> None:
            publish(registry.files, prefix, OUTPUT_FILES, folder)

        return _execute_in(
            registry, artifact, folder, relay, token, timeout_s, handler, (meta, upload)
        )


def _execute_in(
    registry: ArtifactRegistry,
    artifact: Artifact,
    folder: Path,
    relay: str | None,
    token: str,
    timeout_s: float | None,
    handler: HostHandler | None,
    staged: tuple[dict[str, Any], Callable[[], None]] | None,
) -> int:
    """`execute_artifact` over a local ``folder``; ``staged``: the metadata to use and
    how to copy the outputs back, when the folder is a copy of remote files."""
    from rlm_engine.jobs.executor_run import CellJob, run_cell
    from rlm_engine.jobs.relay import RelayClient, no_relay

    artifact_id = artifact.artifact_id
    if artifact.finished:  # never run twice: report the record
        recorded = ArtifactResult.read(folder / RESULT_FILE)
        if recorded is None:
            print(
                f"rlm: artifact {artifact_id!r} is {artifact.status} but its result.json is "
                "gone\nrlm: hint: a finished artifact is not run again; restore its files "
                "to see its result",
                file=sys.stderr,
            )
            return EXIT_EXECUTOR_FAILED
        _print_marked(recorded)
        return EXIT_OK if recorded.status == "success" else EXIT_CELL_FAILED
    code = (folder / CODE_FILE).read_text(encoding="utf-8")
    meta = artifact.metadata if staged is None else staged[0]
    job = CellJob.of(artifact_id, code, meta, folder, timeout_s=timeout_s)
    registry.mark(
        artifact_id,
        "executing",
        metadata={"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()},
    )
    inner = handler or (RelayClient(relay, token) if relay else no_relay)
    recorder = _Recorder(inner)
    run = asyncio.run(run_cell(job, recorder))
    result = run.result
    (folder / STDOUT_FILE).write_text(run.stdout[:FILE_CAP_CHARS], encoding="utf-8")
    (folder / STDERR_FILE).write_text(run.stderr[:FILE_CAP_CHARS], encoding="utf-8")
    (folder / CALLS_FILE).write_text(json.dumps(recorder.calls, default=str), encoding="utf-8")
    result.write(folder / RESULT_FILE)
    if result.executor_error:
        if staged is not None:
            staged[1]()
        # Nothing ran (no isolation here, a context gone, an unreadable snapshot): the
        # row goes back to pending, so the artifact runs once the cause is fixed.
        registry.mark(artifact_id, "pending", metadata={"executor_error": result.error})
        _print_marked(result)
        return EXIT_EXECUTOR_FAILED
    _write_notebook(artifact, folder, code, meta, result)
    if staged is not None:
        staged[1]()  # the files first: a finished row never names missing files
    registry.mark(
        artifact_id,
        "completed" if result.status == "success" else "failed",
        stdout_artifact_key=registry.key(artifact_id, STDOUT_FILE),
        stderr_artifact_key=registry.key(artifact_id, STDERR_FILE),
        metadata={
            "cell_status": result.cell_status,
            "duration_s": result.duration_s,
            "stdout_truncated": result.stdout_truncated,
            "stderr_truncated": result.stderr_truncated,
            "result_key": registry.key(artifact_id, RESULT_FILE),
            "notebook_key": registry.key(artifact_id, NOTEBOOK_FILE),
        },
    )
    _print_marked(result)
    return EXIT_OK if result.status == "success" else EXIT_CELL_FAILED


def _write_notebook(
    artifact: Artifact,
    folder: os.PathLike[str] | str,
    code: str,
    meta: Mapping[str, Any],
    result: ArtifactResult,
) -> None:
    from rlm_engine.jobs.notebook import artifact_notebook, write_notebook

    where = Path(folder)
    parent = meta.get("parent")
    notebook = artifact_notebook(
        artifact_id=artifact.artifact_id,
        session_id=artifact.session_id,
        invocation_id=artifact.invocation_id,
        iteration=artifact.iteration,
        code=code,
        folder=where,
        context=meta.get("context") or {"kind": "none"},
        restores=(where / "namespace.in").exists(),
        parent=parent if isinstance(parent, str) else None,
        result=result,
    )
    write_notebook(where / NOTEBOOK_FILE, notebook)


def _print_marked(result: ArtifactResult) -> None:
    body = result.stdout + result.stderr
    if result.cell_status != "ok" and result.error:
        body += result.error if result.error.endswith("\n") else result.error + "\n"
    sys.stdout.write(markers.wrap(result.artifact_id, body, result.status))
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """The ``rlm-executor`` console script: exit statuses and error text as ``rlm``'s."""
    from rlm_engine.cli.main import run_handler

    args = executor_parser().parse_args(argv)
    return run_handler(run_execute, args)


if __name__ == "__main__":
    raise SystemExit(main())
