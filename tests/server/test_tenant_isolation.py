"""Two tenants on one real server: every route, tried by tenant B with tenant A's ids,
answers 404 and reveals nothing of A; without a key every route answers 401.

The table below must name every /api and /v1 route of the real app (read from
`create_app(...).routes`), so a route added without a case here fails this test."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_support import (
    Launch,
    LiveServer,
    StartSimThread,
    create_key,
    server_env,
    wait_for,
)

from rlm_engine.settings import Settings
from rlm_engine.sim import CallablePolicy

# What only tenant A's data holds: none of it may reach tenant B.
A_TENANT = "tenant-alpha"
A_SESSION_NAME = "alpha-session-name-5b21"
A_CONTEXT = "alpha context text 91c7, for alpha's eyes only"
A_QUESTION = "alpha question 0d4e: what is in the context?"
A_ANSWER = "alpha answer 77aa"
A_MEMORY_KEY = "alpha-mem-key"
A_MEMORY_VALUE = "alpha memory value e3f0"
A_SECRETS = (A_TENANT, A_SESSION_NAME, A_CONTEXT, A_QUESTION, A_ANSWER, A_MEMORY_VALUE)

_PARAM = re.compile(r"\{[^}]+\}")


@dataclass(frozen=True)
class Case:
    """How to call one route with tenant A's ids: the ids for its path parameters in
    order (names of `Ids` fields), and a JSON body or query that may carry more."""

    path_ids: tuple[str, ...] = ()
    body: dict[str, Any] | None = None
    params: dict[str, str] = field(default_factory=dict[str, str])


# Routes that name one of A's resources: B must get 404. Body values "{run}" etc. are
# replaced by A's ids.
BY_ID: dict[tuple[str, str], Case] = {
    ("GET", "/api/executions/{}/tree"): Case(("run",)),
    ("POST", "/api/execute"): Case(body={"session_id": "{session}", "user_query": "hi"}),
    ("POST", "/api/execute/stream"): Case(body={"session_id": "{session}", "user_query": "hi"}),
    ("POST", "/v1/chat/completions"): Case(
        body={
            "model": "rlm/sim/sim-model",
            "session_id": "{session}",
            "messages": [{"role": "user", "content": "hi"}],
        }
    ),
    ("GET", "/v1/sessions/{}"): Case(("session",)),
    ("DELETE", "/v1/sessions/{}"): Case(("session",)),
    ("GET", "/v1/sessions/{}/memory"): Case(("session",)),
    ("GET", "/v1/sessions/{}/memory/{}"): Case(("session", "key")),
    ("PUT", "/v1/sessions/{}/memory/{}"): Case(("session", "key"), body={"value": "B was here"}),
    ("DELETE", "/v1/sessions/{}/memory/{}"): Case(("session", "key")),
    ("POST", "/v1/runs"): Case(body={"question": "B asks", "session_id": "{session}"}),
    ("GET", "/v1/runs/{}"): Case(("run",)),
    ("DELETE", "/v1/runs/{}"): Case(("run",)),
    ("POST", "/v1/runs/{}/cancel"): Case(("run",)),
    ("POST", "/v1/runs/{}/resume"): Case(("run",), body={}),
    ("GET", "/v1/runs/{}/export"): Case(("run",), params={"format": "md"}),
    ("GET", "/v1/runs/{}/tree"): Case(("run",)),
    ("GET", "/v1/runs/{}/events"): Case(("run",)),
    ("GET", "/v1/runs/{}/nodes/{}"): Case(("run", "node")),
    ("GET", "/v1/runs/{}/cells/{}"): Case(("run", "artifact")),
    ("POST", "/v1/runs/{}/replay"): Case(("run",)),
}

# Routes that name nothing of A's: B gets an answer that shows nothing of A.
LISTINGS: dict[tuple[str, str], Case] = {
    ("GET", "/v1/sessions"): Case(),
    ("GET", "/v1/runs"): Case(),
    ("GET", "/v1/stats"): Case(),
    ("GET", "/api/stats"): Case(),
    ("GET", "/v1/models"): Case(),
}

# Routes that create B's own resources from nothing of A's (answered 2xx, B's own).
CREATES: dict[tuple[str, str], Case] = {
    ("POST", "/v1/sessions"): Case(body={"name": "beta session", "context": "beta text"}),
    ("POST", "/api/sessions"): Case(body={"name": "beta seed session", "context": "beta"}),
}

OPEN = {"/healthz", "/readyz", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}


@dataclass(frozen=True)
class Ids:
    run: str
    session: str
    key: str = A_MEMORY_KEY
    node: str = "r/0"  # the first root turn

    @property
    def artifact(self) -> str:
        return f"{self.run}:r/1:1:0"


def api_routes(settings: Settings) -> set[tuple[str, str]]:
    """(method, path with `{}` for each parameter) of every API route of the real app."""
    from fastapi import routing

    from rlm_engine.server import create_app

    app = create_app(settings)
    # FastAPI keeps included routers nested; `iter_route_contexts` walks them (older
    # versions flatten them into `app.routes`).
    walk = getattr(routing, "iter_route_contexts", None)
    views: list[Any] = list(walk(app.routes)) if walk is not None else list(app.routes)
    found: set[tuple[str, str]] = set()
    for route in views:
        original = getattr(route, "original_route", route)
        if not isinstance(original, routing.APIRoute) or route.path in OPEN:
            continue
        for method in set(route.methods or ()) - {"HEAD", "OPTIONS"}:
            found.add((method, _PARAM.sub("{}", route.path)))
    return found


def fill(value: Any, ids: Ids) -> Any:
    if isinstance(value, str):
        return value.format(run=ids.run, session=ids.session, key=ids.key)
    if isinstance(value, dict):
        return {k: fill(v, ids) for k, v in value.items()}  # pyright: ignore[reportUnknownVariableType]
    return value


def call(client: httpx.Client, method: str, template: str, case: Case, ids: Ids) -> httpx.Response:
    path = template.format(*(getattr(ids, name) for name in case.path_ids))
    body = fill(case.body, ids) if case.body is not None else None
    return client.request(method, path, json=body, params=case.params)


def assert_reveals_nothing(reply: httpx.Response, what: str) -> None:
    text = reply.text
    leaked = [s for s in A_SECRETS if s in text]
    assert not leaked, f"{what} showed tenant A's {leaked}: {text[:500]}"


def root_says_final(messages: list[dict[str, Any]]) -> str:
    return f"```repl\nFINAL({A_ANSWER!r})\n```"


def tenant_a_resources(server: LiveServer, key: str) -> Ids:
    with server.client(key) as a:
        made = a.post("/v1/sessions", json={"name": A_SESSION_NAME, "context": A_CONTEXT})
        assert made.status_code in (200, 201), made.text
        session = made.json()["session_id"]
        put = a.put(f"/v1/sessions/{session}/memory/{A_MEMORY_KEY}", json={"value": A_MEMORY_VALUE})
        assert put.status_code in (200, 201, 204), put.text
        run = a.post("/v1/runs", json={"question": A_QUESTION, "session_id": session})
        assert run.status_code == 202, run.text
        run_id = run.json()["run_id"]

        def done() -> bool:
            return a.get(f"/v1/runs/{run_id}").json()["status"] == "completed"

        wait_for(done, "tenant A's run to complete", server=server)
    return Ids(run=run_id, session=session)


def assert_a_is_intact(server: LiveServer, key: str, ids: Ids) -> None:
    """B's deletes, puts, cancels and resumes changed nothing of A's."""
    with server.client(key) as a:
        run = a.get(f"/v1/runs/{ids.run}")
        assert run.status_code == 200 and run.json()["answer"] == A_ANSWER, run.text
        assert run.json()["attempt"] == 1 and run.json()["status"] == "completed"
        session = a.get(f"/v1/sessions/{ids.session}")
        assert session.status_code == 200 and session.json()["name"] == A_SESSION_NAME
        memory = a.get(f"/v1/sessions/{ids.session}/memory/{ids.key}")
        assert memory.status_code == 200 and memory.json()["value"] == A_MEMORY_VALUE
        runs = a.get("/v1/runs").json()["runs"]
        assert [r["run_id"] for r in runs] == [ids.run]


@pytest.fixture
def two_tenants(
    launch: Launch, sim_thread: StartSimThread, tmp_path: Path
) -> tuple[LiveServer, str, str]:
    """A server whose store has keys of tenants A and B (made before it started)."""
    sim = sim_thread(None, CallablePolicy(root_says_final))
    env = server_env(tmp_path / "home", sim.url)
    a_key, b_key = create_key(env, A_TENANT), create_key(env, "tenant-beta")
    return launch(env), a_key, b_key


def test_the_table_names_every_route_of_the_app(tmp_path: Path) -> None:
    routes = api_routes(Settings.from_env({"RLM_HOME": str(tmp_path / "home")}))
    tabled = set(BY_ID) | set(LISTINGS) | set(CREATES)
    assert routes, "the app has no API routes"
    missing = sorted(routes - tabled)
    assert not missing, f"routes without a tenant-isolation case: {missing}"
    # Every route with a path parameter names a resource: it must be a 404 case.
    assert {r for r in routes if "{}" in r[1]} <= set(BY_ID)
    assert not sorted(tabled - routes), f"cases for routes the app lacks: {tabled - routes}"


def test_another_tenants_ids_answer_404_and_reveal_nothing(
    two_tenants: tuple[LiveServer, str, str],
) -> None:
    server, a_key, b_key = two_tenants
    ids = tenant_a_resources(server, a_key)
    with server.client(b_key) as b:
        wrong = {}
        for (method, template), case in BY_ID.items():
            reply = call(b, method, template, case, ids)
            if reply.status_code != 404:
                wrong[f"{method} {template}"] = f"{reply.status_code} {reply.text[:200]}"
            assert_reveals_nothing(reply, f"{method} {template}")
            if reply.status_code == 404:
                assert reply.json()["error"]["type"], reply.text
        assert not wrong, json.dumps(wrong, indent=1)
        for (method, template), case in LISTINGS.items():
            reply = call(b, method, template, case, ids)
            assert reply.status_code == 200, f"{method} {template}: {reply.text}"
            assert_reveals_nothing(reply, f"{method} {template}")
            assert ids.run not in reply.text and ids.session not in reply.text
        assert b.get("/v1/runs").json()["runs"] == []
        assert b.get("/v1/sessions").json()["sessions"] == []
        assert b.get("/v1/stats").json()["totals"]["calls"] == 0
        for (method, template), case in CREATES.items():
            reply = call(b, method, template, case, ids)
            assert reply.status_code in (200, 201), f"{method} {template}: {reply.text}"
            assert_reveals_nothing(reply, f"{method} {template}")
    assert_a_is_intact(server, a_key, ids)
    with server.client(a_key) as a:
        # B's sessions are B's: A sees only its own.
        names = {s["name"] for s in a.get("/v1/sessions").json()["sessions"]}
        assert names == {A_SESSION_NAME}


def test_without_a_key_every_route_answers_401_once_keys_exist(
    two_tenants: tuple[LiveServer, str, str],
) -> None:
    server, a_key, _ = two_tenants
    ids = Ids(run="0" * 16, session="ses_" + "0" * 16)
    routes = {**BY_ID, **LISTINGS, **CREATES}
    for key in (None, "rlm_0000000000000000_" + "x" * 32, a_key + "x"):
        with server.client(key) as anonymous:
            for (method, template), case in routes.items():
                reply = call(anonymous, method, template, case, ids)
                assert reply.status_code == 401, f"{method} {template}: {reply.status_code}"
                assert reply.headers.get("www-authenticate", "").lower().startswith("bearer")
    with server.client() as anonymous:
        assert anonymous.get("/healthz").status_code == 200
        assert anonymous.get("/readyz").status_code == 200
        assert anonymous.get("/openapi.json").status_code == 200
        assert anonymous.get("/v1/runs").json()["error"]["type"]
