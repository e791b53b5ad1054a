"""The Files API of the Databricks double: ``/Volumes/...`` paths as files under one directory.

Only Unity Catalog volume paths exist (``/Volumes/{catalog}/{schema}/{volume}/...``); writes
create parent directories, as the Files API does. Single-shot uploads only: the SDK switches to
multipart uploads above 50 MiB, which this double does not speak.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from email.utils import formatdate
from pathlib import Path

from databricks_double_http import (
    ApiError,
    Request,
    Response,
    Route,
    invalid,
    json_response,
    not_found,
    route,
)


class FilesService:
    """State and handlers of ``/api/2.0/fs/files`` and ``/api/2.0/fs/directories``."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._lock = threading.Lock()

    def routes(self) -> list[Route]:
        files = r"/api/2\.0/fs/files(?P<path>/.*)"
        dirs = r"/api/2\.0/fs/directories(?P<path>/.*)"
        return [
            route("PUT", files, self._put),
            route("GET", files, self._get),
            route("HEAD", files, self._head),
            route("DELETE", files, self._delete),
            route("GET", dirs, self._list),
            route("PUT", dirs, self._mkdir),
            route("HEAD", dirs, self._dir_head),
            route("DELETE", dirs, self._rmdir),
        ]

    def local_path(self, remote: str) -> Path:
        """Where a ``/Volumes/...`` path lives on disk (a typed 400 for anything else)."""
        parts = [p for p in remote.split("/") if p]
        if len(parts) < 4 or parts[0] != "Volumes":
            raise invalid(
                f"Path {remote!r} is not a Unity Catalog volume path "
                "(/Volumes/<catalog>/<schema>/<volume>/...)"
            )
        if any(p in (".", "..") for p in parts):
            raise invalid(f"Path {remote!r} must be absolute and normalised")
        return self._root.joinpath(*parts[1:])

    def _put(self, request: Request, match: re.Match[str]) -> Response:
        remote = match["path"]
        target = self.local_path(remote)
        overwrite = request.query.get("overwrite", "true").lower() != "false"  # default: true
        with self._lock:
            if target.is_dir():
                raise ApiError(409, "ALREADY_EXISTS", f"A directory already exists at {remote}")
            if target.exists() and not overwrite:
                raise ApiError(
                    409, "ALREADY_EXISTS", f"The file being created already exists: {remote}"
                )
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(target.name + ".partial-upload")
            partial.write_bytes(request.body)
            os.replace(partial, target)
        return Response(204)

    def _get(self, request: Request, match: re.Match[str]) -> Response:
        target = self._existing_file(match["path"])
        data = target.read_bytes()
        status = 200
        headers = self._headers(target, len(data))
        wanted = request.headers.get("range", "")
        ranged = re.fullmatch(r"bytes=(\d+)-(\d*)", wanted)
        if ranged is not None:
            start = int(ranged[1])
            end = int(ranged[2]) + 1 if ranged[2] else len(data)
            headers["Content-Range"] = f"bytes {start}-{max(start, end - 1)}/{len(data)}"
            data = data[start:end]
            headers["Content-Length"] = str(len(data))
            status = 206
        return Response(status, data, headers)

    def _head(self, _: Request, match: re.Match[str]) -> Response:
        target = self._existing_file(match["path"])
        return Response(200, b"", self._headers(target, target.stat().st_size))

    def _delete(self, _: Request, match: re.Match[str]) -> Response:
        target = self._existing_file(match["path"])
        with self._lock:
            target.unlink()
        return Response(204)

    def _list(self, _: Request, match: re.Match[str]) -> Response:
        remote = match["path"].rstrip("/")
        target = self._existing_dir(remote)
        contents: list[dict[str, object]] = []
        for child in sorted(target.iterdir()):
            if child.name.endswith(".partial-upload"):
                continue
            stat = child.stat()
            entry: dict[str, object] = {
                "path": f"{remote}/{child.name}" + ("/" if child.is_dir() else ""),
                "name": child.name,
                "is_directory": child.is_dir(),
                "last_modified": int(stat.st_mtime * 1000),
            }
            if child.is_file():
                entry["file_size"] = stat.st_size
            contents.append(entry)
        return json_response({"contents": contents} if contents else {})

    def _mkdir(self, _: Request, match: re.Match[str]) -> Response:
        target = self.local_path(match["path"])
        with self._lock:
            if target.is_file():
                raise ApiError(409, "ALREADY_EXISTS", f"A file already exists at {match['path']}")
            target.mkdir(parents=True, exist_ok=True)
        return Response(204)

    def _dir_head(self, _: Request, match: re.Match[str]) -> Response:
        self._existing_dir(match["path"])
        return Response(200)

    def _rmdir(self, _: Request, match: re.Match[str]) -> Response:
        target = self._existing_dir(match["path"])
        with self._lock:
            if any(target.iterdir()):
                raise ApiError(
                    400, "DIRECTORY_NOT_EMPTY", f"Directory {match['path']} is not empty"
                )
            shutil.rmtree(target)
        return Response(204)

    def _existing_file(self, remote: str) -> Path:
        target = self.local_path(remote)
        if not target.is_file():
            raise ApiError(404, "NOT_FOUND", f"The file {remote} does not exist")
        return target

    def _existing_dir(self, remote: str) -> Path:
        target = self.local_path(remote)
        if not target.is_dir():
            raise not_found(f"The directory {remote} does not exist")
        return target

    @staticmethod
    def _headers(target: Path, size: int) -> dict[str, str]:
        return {
            "Content-Type": "application/octet-stream",
            "Content-Length": str(size),
            "Last-Modified": formatdate(target.stat().st_mtime, usegmt=True),
        }
