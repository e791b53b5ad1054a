"""Start-up stays cheap: importing the package, building the CLI parser and the commands that
need no store or SDK load none of the heavy dependencies.

Each check runs in a fresh interpreter and looks at ``sys.modules`` (not at the clock, which
depends on the machine)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import get_args

import pytest

HEAVY = (
    "sqlalchemy",
    "alembic",
    "openai",
    "aiohttp",
    "httpx",
    "anthropic",
    "google.genai",
    "litellm",
    "rich",
    "genai_prices",
    "matplotlib",
    "numpy",
    "nbformat",
    "opentelemetry",
    "ray",
    "docker",
    "modal",
    "pydantic",
    "psycopg",
    "fastapi",
)
# What a command that reads the store may load on top of the standard library.
STORE_ONLY = tuple(m for m in HEAVY if m != "sqlalchemy")

PROBE = """
import contextlib, io, json, sys
{code}
heavy = {heavy!r}
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in heavy or m in heavy)))
"""


def loaded(
    code: str, heavy: tuple[str, ...] = HEAVY, env: dict[str, str] | None = None
) -> list[str]:
    """The heavy modules loaded after running ``code`` in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(code=code, heavy=heavy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=env,
    )
    return json.loads(out.stdout.splitlines()[-1])


def run_cli(argv: list[str]) -> str:
    """Code that runs ``rlm ARGV`` in-process, its output and exit swallowed."""
    return (
        "from rlm_engine.cli.main import main\n"
        "out, err = io.StringIO(), io.StringIO()\n"
        "with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):\n"
        "    try:\n"
        f"        main({argv!r})\n"
        "    except SystemExit:\n"
        "        pass\n"
    )


@pytest.mark.parametrize(
    "code",
    [
        "import rlm_engine",
        "import rlm_engine.cli.main",
        "from rlm_engine.cli.main import build_parser; build_parser()",
        "import rlm_engine.store.records, rlm_engine.store.blobs",
    ],
)
def test_imports_load_no_heavy_module(code: str) -> None:
    assert loaded(code) == []


def test_rlm_ask_imports_no_terminal_tracing_or_export_module_before_it_runs() -> None:
    # The run needs the store, the engine and pydantic; not rich (piped), OpenTelemetry
    # (no endpoint), Alembic (a migrated store) or nbformat.
    optional = ("rich", "opentelemetry", "alembic", "nbformat", "matplotlib")
    assert loaded("import rlm_engine.cli.ask", optional) == []


@pytest.mark.parametrize("argv", [["--help"], ["runs", "--help"], ["ask", "--help"], ["models"]])
def test_light_commands_load_no_heavy_module(argv: list[str]) -> None:
    assert loaded(run_cli(argv)) == []


def test_runs_list_loads_sqlalchemy_but_no_alembic_pydantic_or_sdk(tmp_path: Path) -> None:
    env = {"RLM_HOME": str(tmp_path), "PATH": os.environ.get("PATH", "")}
    # The first open creates a fresh store (with SQLAlchemy); the next ones find it current.
    assert "sqlalchemy" in loaded(run_cli(["runs", "list"]), ("sqlalchemy",), env=env)
    assert loaded(run_cli(["runs", "list"]), STORE_ONLY, env=env) == []


def test_runs_list_reads_a_current_sqlite_store_without_sqlalchemy(tmp_path: Path) -> None:
    env = {"RLM_HOME": str(tmp_path), "PATH": os.environ.get("PATH", "")}
    loaded(run_cli(["runs", "list"]), env=env)  # creates the store
    assert loaded(run_cli(["runs", "list"]), env=env) == []
    assert loaded(run_cli(["runs", "list", "--json", "--status", "completed"]), env=env) == []
    # Another store URL is opened in full, as before.
    url = {**env, "RLM_STORE_URL": f"sqlite:///{tmp_path / 'rlm.db'}"}
    assert "sqlalchemy" in loaded(run_cli(["runs", "list"]), ("sqlalchemy",), env=url)


def test_rlm_ask_module_loads_no_store_driver() -> None:
    # The store opens in the background once the run's first request is on its way.
    assert loaded("import rlm_engine.cli.ask", ("sqlalchemy", "alembic", "http.client")) == []


def test_rlm_ask_sends_its_first_request_before_loading_sqlalchemy(tmp_path: Path) -> None:
    from rlm_engine.sim.config import SimConfig
    from rlm_engine.sim.policies import CallablePolicy
    from rlm_engine.sim.runner import SimServerThread

    context = tmp_path / "context.txt"
    context.write_text("host=db-7 disk FAILED\n")
    argv = ["ask", "what failed?", "--context", str(context), "--model", "openai/sim", "--json"]
    # At the first connection (the model request), note the store modules already loaded.
    code = (
        "seen = []\n"
        "def hook(event, args):\n"
        "    if event == 'socket.connect' and not seen:\n"
        "        seen.append(sorted(m for m in sys.modules if m.startswith('sqlalchemy')))\n"
        "sys.addaudithook(hook)\n"
        + run_cli(argv)
        + "print(json.dumps(seen), file=sys.__stdout__)\n"
    )
    with SimServerThread(SimConfig(), CallablePolicy(lambda messages: "FINAL(ok)")) as sim:
        env = {
            "RLM_HOME": str(tmp_path / "home"),
            "PATH": os.environ.get("PATH", ""),
            "OPENAI_BASE_URL": sim.url,
            "OPENAI_API_KEY": "sim",
        }
        for _ in range(2):  # a fresh store, then a current one
            out = subprocess.run(
                [sys.executable, "-c", PROBE.format(code=code, heavy=("sqlalchemy",))],
                capture_output=True,
                text=True,
                timeout=120,
                check=True,
                env=env,
            )
            seen, after = (json.loads(line) for line in out.stdout.splitlines()[-2:])
            assert seen == [[]], out.stderr[-2000:]  # nothing of SQLAlchemy before the request
            assert "sqlalchemy" in after  # the run was recorded, after it


def test_parser_run_statuses_match_the_store() -> None:
    from rlm_engine.cli.commands.runs import RUN_STATUSES
    from rlm_engine.store.records import RunStatus

    assert get_args(RunStatus) == RUN_STATUSES


def test_store_loads_only_the_sqlite_dialect(tmp_path: Path) -> None:
    # The store opens, records a run and upserts (memory) without the PostgreSQL dialect.
    code = (
        "from pathlib import Path\n"
        "from rlm_engine.store import MemoryScope, NewRun, open_store\n"
        "from rlm_engine.store.memory_mapping import StoreMemory\n"
        f"store = open_store(None, Path({str(tmp_path)!r}))\n"
        "store.create_run(NewRun(run_id='r1', question='q', model='m', sub_model='m'))\n"
        "StoreMemory(store, MemoryScope.user('u'))['k'] = 'v'\n"
        "store.close()\n"
    )
    modules = loaded(code, ("sqlalchemy",))
    assert "sqlalchemy.dialects.sqlite" in modules
    assert not [m for m in modules if m.startswith("sqlalchemy.dialects.postgresql")]


def test_events_build_their_validators_on_first_use() -> None:
    code = (
        "from rlm_engine import events\n"
        "built = sorted(c.__name__ for c in events._Event.__subclasses__()"
        " if c.__pydantic_complete__)\n"
        "assert built == [], built\n"
        "e = events.IterationStarted(run_id='r', iteration=1)\n"
        "assert events.IterationStarted.__pydantic_complete__\n"
        "assert not events.CellStarted.__pydantic_complete__\n"
        "assert e.model_dump()['type'] == 'iteration_started'\n"
    )
    assert loaded(code, ("pydantic",)) != []  # events are pydantic models still


def test_the_direct_openai_path_sends_without_aiohttp_or_http_client() -> None:
    # `rlm ask`'s first request to an OpenAI-compatible server goes through it, so the CLI
    # prefetches no HTTP stack.
    code = (
        "import asyncio\n"
        "from rlm_engine.lm.openai_direct import DirectChat\n"
        "chat = DirectChat(provider='sim', base_url='http://127.0.0.1:9/v1', api_key='k')\n"
        "try:\n"
        "    asyncio.run(chat.post({}, timeout_s=5.0))\n"
        "except Exception:\n"
        "    pass\n"
    )
    assert loaded(code, (*HEAVY, "http.client")) == []
