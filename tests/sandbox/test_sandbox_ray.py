"""The Ray backend on a real local Ray instance, started once for this module.

Every cell here runs in the real worker inside a real Ray actor: frames, host calls,
interrupts and kills cross Ray's actor calls. The instance is started with a canary
variable in its environment, as a host holding a secret would start it.
"""

from __future__ import annotations

import ast
import asyncio
import ipaddress
import os
import socket
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import ray
from sandbox_fakes import FakeHost

from rlm_engine.errors import ContextError, MissingExtraError, SandboxDied
from rlm_engine.sandbox.factory import sandbox_factory
from rlm_engine.sandbox.ray_backend import RaySandbox, load_ray

CANARY = "RLM_TEST_CANARY_TOKEN"
CANARY_VALUE = "canary-4f1c9e"


def _loopback_only(real: Any) -> Any:
    def connect(sock: socket.socket, address: Any) -> Any:
        host = address[0] if isinstance(address, tuple) else None
        if host not in (None, "localhost") and not ipaddress.ip_address(host).is_loopback:
            raise AssertionError(f"Ray startup tried a real network connection to {address!r}")
        return real(sock, address)

    return connect


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[float]:
    """A local Ray instance (2 CPUs, a ``data_node`` resource); yields its start time."""
    from ray._private import ray_constants

    began = time.monotonic()
    with pytest.MonkeyPatch.context() as patch:
        # `uv run` would make Ray rebuild the project's environment for every worker.
        patch.setattr(ray_constants, "RAY_ENABLE_UV_RUN_RUNTIME_ENV", False)
        patch.setenv("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
        patch.setenv("RAY_USAGE_STATS_ENABLED", "0")
        patch.setenv(CANARY, CANARY_VALUE)  # inherited by every Ray process from here on
        # The network guard (tests/conftest.py) is function-scoped; this one covers
        # Ray's startup in this process.
        patch.setattr(socket.socket, "connect", _loopback_only(socket.socket.connect))
        try:
            ray.init(
                num_cpus=2,
                resources={"data_node": 1},
                include_dashboard=False,
                object_store_memory=80 * 1024 * 1024,
                _node_ip_address="127.0.0.1",
                log_to_driver=False,
            )
        except Exception as exc:
            pytest.fail(f"a local Ray instance could not be started: {type(exc).__name__}: {exc}")
    try:
        yield time.monotonic() - began
    finally:
        ray.shutdown()


@pytest.fixture
async def box(ray_cluster: float, tmp_path: Path) -> AsyncIterator[RaySandbox]:
    sandbox = RaySandbox(FakeHost(), tools=["lookup"], workdir_parent=str(tmp_path))
    await sandbox.start()
    try:
        yield sandbox
    finally:
        await sandbox.close()


async def test_cells_persist_reach_the_host_and_capture_final(ray_cluster: float) -> None:
    host = FakeHost()
    factory = sandbox_factory("ray", num_cpus=1)
    sandbox = factory(host, ("lookup",))
    assert isinstance(sandbox, RaySandbox)
    await sandbox.start()
    try:
        assert sandbox.placement["node_id"] == ray.get_runtime_context().get_node_id()
        first = await sandbox.execute(
            "import os\nx = 41\nos.write(1, b'raw\\n')\n"
            "print(llm_query('q'), lookup(1, k=2)['args'], llm_query_batched(['a', 'b']))",
            timeout_s=20,
        )
        assert first.status == "ok", first
        assert first.output == "answer to q [1] ['answer to a', 'answer to b']\nraw\n"
        second = await sandbox.execute("x += 1\nFINAL(f'x is {x}')", timeout_s=20)
        assert second.status == "ok" and second.final is not None
        assert second.final.answer == "x is 42"
        assert "x" in await sandbox.list_vars()
        methods = [method for method, _ in host.calls]
        assert methods == ["llm_query", "tool", "llm_query_batched"]
        failed = await sandbox.execute("llm_query('fail')", timeout_s=20)
        assert failed.status == "error" and "the model exploded" in (failed.error or "")
    finally:
        await sandbox.close()
    assert not sandbox.alive


async def test_timeout_keeps_state_and_a_stuck_cell_is_killed(box: RaySandbox) -> None:
    assert (await box.execute("y = 7", timeout_s=20)).status == "ok"
    timed_out = await box.execute("import time\ntime.sleep(60)", timeout_s=0.5)
    assert timed_out.status == "timeout", timed_out
    assert "KeyboardInterrupt" in (timed_out.error or "")
    assert (await box.execute("print(y)", timeout_s=20)).output == "7\n"
    stuck = (
        "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "print('stuck', flush=True)\ntime.sleep(60)"
    )
    killed = await box.execute(stuck, timeout_s=0.5)
    assert killed.status == "killed", killed
    assert "SandboxKilled" in (killed.error or "")
    assert not box.alive
    with pytest.raises(SandboxDied):
        await box.execute("print(y)", timeout_s=5)


async def test_contexts_from_memory_and_from_paths_on_the_node(
    box: RaySandbox, tmp_path: Path
) -> None:
    meta = await box.load_context({"rows": [1, 2, 3]})
    assert meta.type == "dict"
    assert (await box.execute("print(context['rows'][-1])", timeout_s=20)).output == "3\n"
    document = tmp_path / "notes.txt"
    document.write_text("needle in a haystack")
    meta = await box.load_context(document)
    assert meta.type == "str" and meta.total_chars == 20
    found = await box.execute("print(context.find('needle'))", timeout_s=20)
    assert found.output == "0\n"
    corpus = tmp_path / "docs"
    (corpus / "sub").mkdir(parents=True)
    (corpus / "a.txt").write_text("alpha")
    (corpus / "sub" / "b.txt").write_text("beta")
    meta = await box.load_context(corpus)
    assert meta.files == 2
    with pytest.raises(ContextError):
        await box.load_context(tmp_path / "missing.txt")


async def test_placement_options_and_no_inherited_secrets(
    ray_cluster: float, tmp_path: Path
) -> None:
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    node_id = ray.get_runtime_context().get_node_id()
    sandbox = RaySandbox(
        FakeHost(),
        resources={"data_node": 1},
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node_id, soft=False),
        num_cpus=0.5,
    )
    await sandbox.start()
    try:
        assert sandbox.placement["node_id"] == node_id
        names = await sandbox.actor_environment()
        assert CANARY not in names
        probe = (
            "import os\nleaks = []\n"
            "for pid in [p for p in os.listdir('/proc') if p.isdigit()]:\n"
            "    try:\n"
            "        data = open(f'/proc/{pid}/environ', 'rb').read()\n"
            "    except OSError:\n"
            "        continue\n"
            f"    if b'{CANARY_VALUE}' in data:\n"
            "        leaks.append(pid)\n"
            "print((sorted(os.environ), leaks))"
        )
        result = await sandbox.execute(probe, timeout_s=20)
        assert result.status == "ok", result
        names, leaks = ast.literal_eval(result.output)
        assert set(names) <= {"HOME", "LANG", "LC_ALL", "PATH", "PWD", "TMPDIR"}, names
        if sandbox.isolation_level != "none":
            # In its own pid namespace the worker sees none of the cluster's processes.
            assert leaks == [], result.output
    finally:
        await sandbox.close()


async def test_a_lost_actor_is_a_dead_sandbox(ray_cluster: float, tmp_path: Path) -> None:
    host = FakeHost()
    host.delay_s = 120.0  # the cell below waits on the host until the actor is gone
    box = RaySandbox(host, workdir_parent=str(tmp_path))
    await box.start()
    try:
        relay = box._ray_relay  # pyright: ignore[reportPrivateUsage]
        assert relay is not None
        cell = asyncio.ensure_future(box.execute("print(llm_query('wait'))", timeout_s=120))
        while not host.calls:  # the cell is running once its host call arrives
            await asyncio.sleep(0.02)
        ray.kill(relay._actor)  # pyright: ignore[reportPrivateUsage]
        result = await cell
        assert result.status == "killed"
        assert "Ray actor" in (result.error or "")
        with pytest.raises(SandboxDied, match="Ray actor"):
            await box.execute("print(1)", timeout_s=20)
    finally:
        await box.close()


def test_a_missing_ray_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(MissingExtraError, match=r"rlm-engine\[ray\]"):
        load_ray()
    with pytest.raises(MissingExtraError):
        sandbox_factory("ray")


def test_module_budget(ray_cluster: float) -> None:
    # Startup is most of this module's time; keep it visible in the report.
    print(f"local Ray instance started in {ray_cluster:.1f} s")
    assert os.environ.get(CANARY) is None  # the host's environment was restored
