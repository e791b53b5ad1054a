"""The web UI's bundle at "/": client routes fall back to index.html, the API keeps its
own 404 and 405, and nothing outside the bundle is ever served."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient

from rlm_engine.server import create_app
from rlm_engine.server.ui import STATIC_DIR, mount_ui
from rlm_engine.settings import Settings

INDEX = "<!doctype html><title>ui</title>"


def _bundle(tmp_path: Path) -> Path:
    static = tmp_path / "static"
    (static / "assets").mkdir(parents=True)
    (static / "index.html").write_text(INDEX)
    (static / "assets" / "app.js").write_text("console.log(1)")
    (tmp_path / "secret.txt").write_text("not for the web")
    return static


def _client(tmp_path: Path) -> TestClient:
    app = FastAPI()
    api = APIRouter()

    @api.get("/v1/stats")
    def stats() -> dict[str, int]:  # pyright: ignore[reportUnusedFunction]
        return {"calls": 0}

    app.include_router(api)
    mount_ui(app, _bundle(tmp_path))
    return TestClient(app)


def test_pages_and_assets(tmp_path: Path) -> None:
    client = _client(tmp_path)
    for path in ("/", "/runs", "/runs/abc123", "/sessions/ses_1", "/dashboard"):
        reply = client.get(path)
        assert reply.status_code == 200, path
        assert reply.text == INDEX
        assert reply.headers["content-type"].startswith("text/html")
    asset = client.get("/assets/app.js")
    assert asset.status_code == 200 and asset.text == "console.log(1)"
    assert client.get("/assets/missing.js").status_code == 404


def test_api_paths_keep_their_answers(tmp_path: Path) -> None:
    client = _client(tmp_path)
    assert client.get("/v1/stats").json() == {"calls": 0}
    for path in ("/v1/nope", "/api/nope", "/mcp/x", "/healthz/x", "/openapi.json/x"):
        reply = client.get(path)
        assert reply.status_code == 404, path
        assert "html" not in reply.headers["content-type"]
    refused = client.delete("/v1/stats")
    assert refused.status_code == 405
    assert refused.headers["allow"] == "GET"
    assert client.post("/v1/nope").status_code == 404
    assert client.post("/runs").status_code == 404


def test_nothing_outside_the_bundle(tmp_path: Path) -> None:
    client = _client(tmp_path)
    for path in ("/../secret.txt", "/..%2fsecret.txt", "/assets/../../secret.txt", "/.hidden"):
        reply = client.get(path)
        assert "not for the web" not in reply.text, path


def test_create_app_mounts_the_ui_last(tmp_path: Path) -> None:
    assert (STATIC_DIR / "index.html").is_file(), "the committed bundle is missing"
    app = create_app(Settings(home=tmp_path))
    last = app.router.routes[-1]
    assert getattr(last, "path", None) == "/{path:path}"
    client = TestClient(app)  # no lifespan: only routes that need no services answer
    assert client.get("/runs/x").text == (STATIC_DIR / "index.html").read_text()
    assert client.get("/openapi.json").json()["info"]["title"] == "rlm-engine"
