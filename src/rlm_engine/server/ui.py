"""The web UI: the built single-page app in ``static/``, served at ``/``.

Any GET of a path that is not an API route, the docs or a file of the bundle answers the
app's ``index.html``, so a client route (``/runs/<id>``) can be reloaded or linked to. The
API's own prefixes are never answered with the page: an unknown ``/v1/...`` path is still
the API's 404 (or 405), exactly as without the UI.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match, Route

STATIC_DIR = Path(__file__).resolve().parent / "static"

# Paths the UI must never answer: the API, its docs and the probes. A prefix matches the
# segment itself and anything under it.
RESERVED = ("api", "v1", "docs", "redoc", "openapi.json", "healthz", "readyz", "mcp")

_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
# The bundle's file names carry no content hash (so a rebuild is byte-identical), so the
# browser revalidates them; the ETag FileResponse sends makes that a 304.
_CACHE = {"Cache-Control": "no-cache"}


def is_reserved(path: str) -> bool:
    first = path.lstrip("/").split("/", 1)[0]
    return first in RESERVED


def _static_file(root: Path, path: str) -> Path | None:
    """The bundle's file at ``path``, if there is one; never a file outside ``root``."""
    parts = PurePosixPath(path.lstrip("/")).parts
    if not parts or any(p in ("..", ".") or p.startswith(".") for p in parts):
        return None
    candidate = root.joinpath(*parts).resolve()
    if not candidate.is_relative_to(root) or not candidate.is_file():
        return None
    return candidate


def _methods_of(route: BaseRoute, path: str) -> set[str]:
    """The methods ``route`` answers at ``path``; an included router lists its routes'."""
    methods: Any = getattr(route, "methods", None)
    if methods:
        return {str(m) for m in methods}
    found: set[str] = set()
    for candidate in getattr(route, "_effective_candidates", None) or ():
        regex: Any = getattr(candidate, "path_regex", None)
        if regex is not None and regex.match(path):
            found.update(str(m) for m in getattr(candidate, "methods", None) or ())
    return found


def _refuse(request: Request, others: list[BaseRoute]) -> None:
    """Raise what the router would have answered without the UI's catch-all route: 405
    when another route has this path with other methods, else 404."""
    partial = False
    allowed: set[str] = set()
    for route in others:
        match, _ = route.matches(request.scope)
        if match is Match.PARTIAL:
            partial = True
            allowed |= _methods_of(route, request.url.path)
    if partial:
        headers = {"Allow": ", ".join(sorted(allowed))} if allowed else None
        raise StarletteHTTPException(405, headers=headers)
    raise StarletteHTTPException(404)


def mount_ui(app: FastAPI, static_dir: Path = STATIC_DIR) -> None:
    """Serve the bundle in ``static_dir`` at ``/``. Call it after every other route is
    added: its catch-all route must come last. Without a built bundle it adds nothing."""
    index = static_dir / "index.html"
    if not index.is_file():
        return
    root = static_dir.resolve()

    async def ui(request: Request) -> Response:
        path = str(request.path_params.get("path", ""))
        if request.method not in ("GET", "HEAD") or is_reserved(path):
            _refuse(request, [r for r in app.router.routes if r is not route])
        found = _static_file(root, path)
        if found is not None:
            return FileResponse(found, headers=_CACHE)
        if PurePosixPath(path).suffix and path.startswith("assets/"):
            raise StarletteHTTPException(404)  # a missing asset is not a page
        return FileResponse(index, media_type="text/html", headers=_CACHE)

    # A plain Starlette route, not an API route: it is no part of the API's schema or of
    # the route list the API's own checks walk.
    route = Route("/{path:path}", ui, methods=_METHODS, include_in_schema=False)
    app.router.routes.append(route)
