"""Local model servers: where each one listens, and a quick probe of whether it does.

``rlm models`` and model discovery only say a server is there after it answered. The
probe uses the standard library alone (``socket``, ``http.client``), so ``rlm models``
stays as quick to start as the rest of the CLI.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, cast
from urllib.parse import urlsplit

CONNECT_TIMEOUT_S = 0.3
# Enough for a loaded server to list its models; a hung one is reported, not waited for.
READ_TIMEOUT_S = 1.5
_MAX_BODY = 1 << 20
_LOOPBACK = ("localhost", "127.0.0.1", "::1")

ServerState = Literal["ready", "not running", "not responding"]


@dataclass(frozen=True, slots=True)
class LocalServer:
    """An OpenAI-compatible server a provider talks to, and how a user starts it."""

    provider: str
    variable: str
    default_url: str | None
    start: str


LOCAL_SERVERS: tuple[LocalServer, ...] = (
    LocalServer("ollama", "OLLAMA_BASE_URL", "http://127.0.0.1:11434/v1", "ollama serve"),
    LocalServer("vllm", "VLLM_BASE_URL", "http://127.0.0.1:8000/v1", "vllm serve MODEL"),
    LocalServer(
        "llamacpp",
        "LLAMACPP_BASE_URL",
        "http://127.0.0.1:8080/v1",
        "llama-server -m MODEL.gguf --port 8080",
    ),
)
# Servers probed only when their variable names one (the provider works without it).
CONFIGURED_SERVERS: tuple[LocalServer, ...] = (
    LocalServer("openai", "OPENAI_BASE_URL", None, "the server OPENAI_BASE_URL names"),
    LocalServer("sim", "RLM_SIM_URL", None, "rlm sim serve"),
)


@dataclass(frozen=True, slots=True)
class Probe:
    """What a server's address said when asked for its models."""

    url: str
    state: ServerState
    detail: str
    models: tuple[str, ...] = ()


def server_url(server: LocalServer, env: Mapping[str, str]) -> str | None:
    """The base URL (ending in ``/v1`` for Ollama) the provider would use."""
    url = env.get(server.variable, "").strip() or server.default_url
    if url is None:
        return None
    url = url.rstrip("/")
    if server.provider == "ollama" and not url.endswith("/v1"):
        url = f"{url}/v1"  # OLLAMA_BASE_URL conventionally names the server root
    return url


def is_loopback(url: str) -> bool:
    """Whether ``url`` names this machine (only those are probed for ``openai``)."""
    host = urlsplit(url).hostname or ""
    return host in _LOOPBACK or host.startswith("127.")


def model_ids(body: object) -> list[str]:
    """The ids of an OpenAI ``GET /models`` listing (empty for anything else)."""
    if not isinstance(body, dict):
        return []
    data = cast(dict[str, object], body).get("data")
    if not isinstance(data, list):
        return []
    ids: list[str] = []
    for item in cast(list[object], data):
        if isinstance(item, dict) and "id" in item:
            ids.append(str(cast(dict[str, object], item)["id"]))
    return ids


def probe_server(
    url: str,
    start: str,
    *,
    connect_timeout_s: float = CONNECT_TIMEOUT_S,
    read_timeout_s: float = READ_TIMEOUT_S,
) -> Probe:
    """Connect to ``url``'s port, then ``GET <url>/models``; never raises."""
    parts = urlsplit(url)
    secure = parts.scheme == "https"
    host = parts.hostname or "127.0.0.1"
    try:
        port = parts.port or (443 if secure else 80)
    except ValueError:
        return Probe(url, "not running", f"{url} has no valid port")
    where = f"{host}:{port}"
    try:
        socket.create_connection((host, port), timeout=connect_timeout_s).close()
    except OSError:
        return Probe(url, "not running", f"nothing listens on {where}; start it with `{start}`")
    path = f"{parts.path.rstrip('/')}/models"
    connection_class = http.client.HTTPSConnection if secure else http.client.HTTPConnection
    connection = connection_class(host, port, timeout=read_timeout_s)
    try:
        connection.request("GET", path, headers={"Accept": "application/json"})
        response = connection.getresponse()
        status, body = response.status, response.read(_MAX_BODY)
    except (OSError, http.client.HTTPException) as exc:
        reason = str(exc) or type(exc).__name__
        return Probe(url, "not responding", f"{where} accepts connections but GET {path}: {reason}")
    finally:
        connection.close()
    if status != 200:
        return Probe(url, "not responding", f"{where} answered GET {path} with HTTP {status}")
    try:
        models = tuple(model_ids(json.loads(body)))
    except ValueError:
        models = ()
    served = f"serves {', '.join(models[:5])}" if models else "lists no models"
    return Probe(url, "ready", f"{where} {served}", models)


def probe_all(
    targets: Sequence[tuple[str, str]],
    *,
    connect_timeout_s: float = CONNECT_TIMEOUT_S,
    read_timeout_s: float = READ_TIMEOUT_S,
) -> list[Probe]:
    """``probe_server`` for each ``(url, start)`` at once, so the slowest sets the pace."""
    results: list[Probe | None] = [None] * len(targets)

    def run(index: int, url: str, start: str) -> None:
        results[index] = probe_server(
            url, start, connect_timeout_s=connect_timeout_s, read_timeout_s=read_timeout_s
        )

    threads = [
        threading.Thread(target=run, args=(i, url, start), daemon=True)
        for i, (url, start) in enumerate(targets)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + connect_timeout_s + 3 * read_timeout_s
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return [
        result or Probe(url, "not responding", "the probe did not finish")
        for result, (url, _) in zip(results, targets, strict=True)
    ]
