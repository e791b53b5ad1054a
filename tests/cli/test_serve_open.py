"""`rlm serve --open`: the browser is opened on the UI once the server answers /readyz,
and a machine without a browser is told where to go."""

from __future__ import annotations

import http.server
import threading
import webbrowser
from collections.abc import Iterator

import pytest

from rlm_engine.cli.main import build_parser
from rlm_engine.cli.serve import open_when_ready


class _Ready(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/readyz" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.fixture
def ready_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ready)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def test_the_ui_opens_once_the_server_is_ready(
    ready_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []
    monkeypatch.setattr(webbrowser, "open", lambda url: opened.append(url) or True)
    open_when_ready(ready_server).join(10)
    assert opened == [ready_server]


def test_without_a_browser_the_url_is_printed(
    ready_server: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(webbrowser, "open", lambda url: False)
    open_when_ready(ready_server).join(10)
    assert f"visit {ready_server}" in capsys.readouterr().err


def test_open_is_a_serve_flag() -> None:
    args = build_parser().parse_args(["serve", "--open"])
    assert args.open is True
    assert build_parser().parse_args(["serve"]).open is False
