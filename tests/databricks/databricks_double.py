"""A loopback double of the Databricks workspace REST API, for tests with the real databricks-sdk.

`DatabricksDouble` is a real HTTP server on 127.0.0.1 (a thread), speaking the paths and JSON
shapes that the installed ``databricks-sdk`` sends and parses, so that
``WorkspaceClient(host=double.url, token=double.token)`` works unmodified. State lives in memory
and under ``root`` on disk; nothing leaves loopback.

What it emulates (one module each):

- auth: a personal access token as ``Authorization: Bearer``; no header -> 401
  ``UNAUTHENTICATED``, a wrong token -> 403 ``PERMISSION_DENIED`` (as a workspace answers);
  ``/.well-known/databricks-config`` (host metadata the SDK reads first) without a token.
- jobs (`databricks_double_jobs`): Jobs API 2.1/2.2 create/get/list/reset/update/delete,
  run-now, runs get/get-output/list/cancel. A job added with `add_job` runs a local subprocess
  per run (the way a job cluster runs a wheel task's entry point) with a minimal environment
  that points ``DATABRICKS_HOST``/``DATABRICKS_TOKEN`` back at the double; the run moves
  PENDING -> RUNNING -> TERMINATED with SUCCESS/FAILED by exit code, and its output is kept for
  get-output (asked with the task run's id, as on a workspace).
- files (`databricks_double_files`): the Files API on ``/Volumes/...`` paths, stored under
  ``root / "volumes"``; the presigned-URL endpoints answer 404 so the SDK falls back to the
  plain Files API, as it does on workspaces without them.
- secrets (`databricks_double_secrets`): scopes and secrets (values base64 on the wire).
- SQL (`databricks_double_sql`): warehouses list/get (one running warehouse) and the Statement
  Execution API over a DuckDB file (``root / "warehouse.duckdb"``), with Databricks-only SQL
  rewritten to DuckDB.
- serving and the rest (`databricks_double_serving`): serving endpoints list/get, queries
  through ``/serving-endpoints/{name}/invocations`` and the OpenAI-style
  ``/serving-endpoints/chat/completions``, forwarded to ``serving_base_url`` (an
  OpenAI-compatible server on loopback, e.g. the project's simulator) with the endpoint name as
  the model; the current user (SCIM Me); clusters list/get (one running cluster).

Lenient where a deploy would have prepared the workspace: an upload creates the volume's
directories (a workspace needs ``CREATE VOLUME`` first), and CREATE TABLE creates a missing
schema (``sql_auto_create_schemas = False`` makes it fail as a workspace does).

For tests: `add_job` / `attach_command` (a job's local command), `hold_runs` / `release_runs`
(runs stay PENDING meanwhile), `runs`, `jobs`, `secrets` (the dict itself), `files_root`,
`sql` (DuckDB SQL on the warehouse database), `sql_statements`, `sql_chunk_rows`,
`add_warehouse`, `add_serving_endpoint`, `requests` / `requests_to` (the request log), and
`errors` (tracebacks of requests the double failed on, answered 500).

What it does not emulate: OAuth / service principals / the job identity's token exchange (only
the one PAT), permissions and ACLs, Spark and Delta semantics (time travel, ``DESCRIBE HISTORY``
beyond a version counter, schema evolution), multi-task jobs (each job has one task),
schedules and triggers, repair runs, job clusters or wheel installation (the subprocess runs in
the current virtualenv), multipart/resumable uploads (files above the SDK's 50 MiB single-shot
limit), asynchronous statements (every statement finishes within the request), Unity Catalog
APIs other than through SQL, rate limits and retries. Anything else answers 404
``ENDPOINT_NOT_FOUND`` and is kept in `requests` so a test sees what was asked.

Tests import it by module name (``from databricks_double import DatabricksDouble``): pytest puts
each test file's directory on ``sys.path``.
"""

from __future__ import annotations

import json
import threading
import traceback
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from databricks_double_files import FilesService
from databricks_double_http import ApiError, Request, Response, Route, json_response
from databricks_double_jobs import JobsService
from databricks_double_secrets import SecretsService
from databricks_double_serving import ServingService, WorkspaceInfoService
from databricks_double_sql import SqlService

DEFAULT_TOKEN = "dapi-test-token"
WORKSPACE_ID = "1234567890123456"


class DatabricksDouble:
    """A workspace on loopback: use as a context manager; see the module docstring."""

    def __init__(
        self,
        root: Path,
        *,
        serving_base_url: str | None = None,
        token: str = DEFAULT_TOKEN,
    ) -> None:
        self.root = root
        self.token = token
        self.url = ""
        self.requests: list[tuple[str, str]] = []
        self.errors: list[str] = []  # tracebacks of requests the double itself failed on
        root.mkdir(parents=True, exist_ok=True)
        self.files_root = root / "volumes"
        self.files_root.mkdir(exist_ok=True)
        self._jobs = JobsService(lambda: (self.url, self.token), root)
        self._files = FilesService(self.files_root)
        self._secrets = SecretsService()
        self._sql = SqlService(root / "warehouse.duckdb", self.files_root)
        self._serving = ServingService(serving_base_url)
        self._info = WorkspaceInfoService(lambda: self.url)
        self._routes: list[Route] = [
            *self._jobs.routes(),
            *self._files.routes(),
            *self._secrets.routes(),
            *self._sql.routes(),
            *self._serving.routes(),
            *self._info.routes(),
        ]
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- state the tests read -------------------------------------------------------------

    @property
    def jobs(self) -> list[dict[str, Any]]:
        """The jobs as ``jobs/get`` answers them, oldest first."""
        return self._jobs.job_list()

    @property
    def runs(self) -> dict[int, Any]:
        """run_id -> `JobRun` (params, argv, returncode, log, state)."""
        return self._jobs.runs

    @property
    def secrets(self) -> dict[str, dict[str, str]]:
        return self._secrets.secrets

    @property
    def sql_tables(self) -> Path:
        """The DuckDB database file behind the Statement Execution API."""
        return self._sql.database

    @property
    def serving_endpoints(self) -> list[str]:
        return self._serving.endpoint_names

    def add_job(
        self,
        name: str,
        argv_for: Callable[[dict[str, str]], list[str]],
        env: Mapping[str, str] | None = None,
        *,
        parameters: Mapping[str, str] | None = None,
    ) -> int:
        """A job whose runs execute ``argv_for(job_parameters)`` locally; returns its job_id.

        ``parameters`` are the job's default parameters; ``run_now(job_parameters=...)``
        overrides them per run.
        """
        return self._jobs.add_job(name, argv_for, env, parameters or {})

    def attach_command(
        self,
        job_id: int,
        argv_for: Callable[[dict[str, str]], list[str]],
        env: Mapping[str, str] | None = None,
    ) -> None:
        """Give a job created through the API (e.g. by a deploy) a local command to run."""
        self._jobs.attach_command(job_id, argv_for, env)

    def hold_runs(self) -> None:
        """Keep new runs PENDING (as while a job cluster starts) until `release_runs`."""
        self._jobs.hold_runs()

    def release_runs(self) -> None:
        self._jobs.release_runs()

    def add_warehouse(self, name: str, *, running: bool = True) -> str:
        """Another SQL warehouse (the double starts with one running); returns its id."""
        return self._sql.add_warehouse(name, running=running)

    @property
    def sql_chunk_rows(self) -> int:
        """Rows per result chunk of the Statement Execution API (set it low to test paging)."""
        return self._sql.chunk_rows

    @sql_chunk_rows.setter
    def sql_chunk_rows(self, rows: int) -> None:
        self._sql.chunk_rows = max(1, rows)

    @property
    def sql_auto_create_schemas(self) -> bool:
        """Whether CREATE TABLE creates a missing schema (a workspace would refuse)."""
        return self._sql.auto_create_schemas

    @sql_auto_create_schemas.setter
    def sql_auto_create_schemas(self, value: bool) -> None:
        self._sql.auto_create_schemas = value

    @property
    def sql_statements(self) -> list[str]:
        """The Databricks SQL text of every statement executed, in order."""
        return list(self._sql.statements)

    def sql(self, query: str, parameters: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Run DuckDB SQL on the warehouse database (three-part names are ``"c__s".t`` here)."""
        return self._sql.query(query, parameters)

    def add_serving_endpoint(self, name: str) -> None:
        self._serving.add_endpoint(name)

    def wait_for_runs(self, timeout_s: float = 60.0) -> None:
        """Block until every started run has terminated (or raise TimeoutError)."""
        self._jobs.wait_idle(timeout_s)

    def requests_to(self, prefix: str, method: str | None = None) -> list[tuple[str, str]]:
        with self._lock:
            return [
                (m, p)
                for m, p in self.requests
                if p.startswith(prefix) and (method is None or m == method)
            ]

    # -- life cycle -----------------------------------------------------------------------

    def __enter__(self) -> DatabricksDouble:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_class(self))
        server.daemon_threads = True
        self._server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.05,), name="databricks-double", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._jobs.shutdown()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._sql.close()

    # -- dispatch -------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        with self._lock:
            self.requests.append((request.method, request.path))
        try:
            if request.method == "GET" and request.path == "/.well-known/databricks-config":
                return json_response(
                    {"oidc_endpoint": f"{self.url}/oidc", "workspace_id": WORKSPACE_ID}
                )
            self._authenticate(request)
            for candidate in self._routes:
                if candidate.method != request.method:
                    continue
                match = candidate.pattern.match(request.path)
                if match is not None:
                    return candidate.handler(request, match)
            raise ApiError(
                404, "ENDPOINT_NOT_FOUND", f"No API found for '{request.method} {request.path}'"
            )
        except ApiError as error:
            return error.response()
        except json.JSONDecodeError as error:
            return ApiError(400, "MALFORMED_REQUEST", f"invalid JSON body: {error}").response()
        except Exception as error:  # a bug in the double: answer it and keep it for the test
            with self._lock:
                self.errors.append(traceback.format_exc())
            return ApiError(500, "INTERNAL_ERROR", f"the double failed: {error!r}").response()

    def _authenticate(self, request: Request) -> None:
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("bearer "):
            raise ApiError(
                401, "UNAUTHENTICATED", "Credential was not sent or was of an unsupported type"
            )
        if header[len("bearer ") :].strip() != self.token:
            raise ApiError(403, "PERMISSION_DENIED", "Invalid access token.")


def _handler_class(double: DatabricksDouble) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            split = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
            headers = {k.lower(): v for k, v in self.headers.items()}
            request = Request(self.command, unquote(split.path), query, headers, self._body())
            response = double.handle(request)
            self.send_response(response.status)
            for key, value in response.headers.items():
                self.send_header(key, value)
            if "Content-Length" not in response.headers:
                self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks: list[bytes] = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the request log is `DatabricksDouble.requests`."""

    return _Handler
