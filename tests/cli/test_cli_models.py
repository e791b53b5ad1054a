"""``rlm models`` says a local server is ready only after it answered on its port."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator

import pytest

from rlm_engine.cli.local_servers import probe_all, probe_server
from rlm_engine.cli.main import main
from rlm_engine.sim import SimConfig, SimServerThread


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers (a hung server)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted: list[socket.socket] = []

    def accept() -> None:
        try:
            while True:
                accepted.append(listener.accept()[0])
        except OSError:
            return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(listener.getsockname()[1])
    listener.close()
    for conn in accepted:
        conn.close()


@pytest.fixture
def sim_url() -> Iterator[str]:
    with SimServerThread(SimConfig(models=("qwen-local",))) as sim:
        yield sim.url


def test_models_probes_each_local_server(
    sim_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    closed = _closed_port()
    monkeypatch.setenv("OLLAMA_BASE_URL", sim_url.removesuffix("/v1"))
    monkeypatch.setenv("VLLM_BASE_URL", f"http://127.0.0.1:{closed}/v1")
    monkeypatch.setenv("LLAMACPP_BASE_URL", f"http://127.0.0.1:{closed}/v1")
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line for line in lines if line and not line.startswith(" ")}
    assert rows["ollama"].split()[1] == "ready"
    assert rows["vllm"].split()[1:3] == ["not", "running"]
    assert rows["llamacpp"].split()[1:3] == ["not", "running"]
    text = "\n".join(lines)
    assert "serves qwen-local" in text
    assert f"nothing listens on 127.0.0.1:{closed}; start it with `vllm serve MODEL`" in text


def test_models_json_reports_the_probe(
    sim_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    closed = _closed_port()
    monkeypatch.setenv("VLLM_BASE_URL", sim_url)
    monkeypatch.setenv("OLLAMA_BASE_URL", f"http://127.0.0.1:{closed}")
    monkeypatch.setenv("LLAMACPP_BASE_URL", f"http://127.0.0.1:{closed}/v1")
    monkeypatch.setenv("RLM_SIM_URL", f"http://127.0.0.1:{closed}/v1")
    assert main(["models", "--json"]) == 0
    by_name = {row["provider"]: row for row in json.loads(capsys.readouterr().out)}
    assert by_name["vllm"]["ready"] is True
    assert by_name["vllm"]["server"]["models"] == ["qwen-local"]
    assert by_name["ollama"]["ready"] is False
    assert by_name["ollama"]["state"] == "not running"
    assert by_name["ollama"]["server"]["url"] == f"http://127.0.0.1:{closed}/v1"
    assert "start it with `ollama serve`" in by_name["ollama"]["server"]["detail"]
    # A running `rlm sim serve` is probed when RLM_SIM_URL points at one.
    assert by_name["sim"]["state"] == "not running"
    assert "rlm sim serve" in by_name["sim"]["server"]["detail"]
    # Providers without a server keep their own readiness.
    assert by_name["scripted"]["ready"] is True and by_name["scripted"]["server"] is None


def test_a_silent_listener_is_not_responding(silent_port: int) -> None:
    probe = probe_server(f"http://127.0.0.1:{silent_port}/v1", "x", read_timeout_s=0.2)
    assert probe.state == "not responding"
    assert f"127.0.0.1:{silent_port} accepts connections" in probe.detail


def test_probes_run_together_and_keep_their_order(sim_url: str, silent_port: int) -> None:
    closed = _closed_port()
    targets = [
        (f"http://127.0.0.1:{silent_port}/v1", "a"),
        (sim_url, "b"),
        (f"http://127.0.0.1:{closed}/v1", "c"),
    ]
    probes = probe_all(targets, read_timeout_s=0.2)
    assert [p.state for p in probes] == ["not responding", "ready", "not running"]
    assert [p.url for p in probes] == [url for url, _ in targets]
