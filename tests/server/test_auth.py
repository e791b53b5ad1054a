"""API keys and tenants: keys are stored hashed and shown once; once any key exists every
/api and /v1 request needs one; another tenant's ids answer 404; without keys the server
is one local tenant and `rlm serve` binds loopback only."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from pathlib import Path

import pytest
from routes_support import Api, answering, api_settings, running_api, wait_terminal

from rlm_engine.cli.main import main
from rlm_engine.cli.serve import check_bind, is_loopback
from rlm_engine.errors import ConfigurationError
from rlm_engine.server.deps import get_principal
from rlm_engine.service.keys import authenticate, create_key, key_id_of, revoke
from rlm_engine.service.principal import Principal
from rlm_engine.sim.policies import CallablePolicy
from rlm_engine.store.factory import open_store
from sim_support import StartSim

# --- keys ------------------------------------------------------------------------------


def test_a_key_is_stored_as_a_hash_and_authenticates_its_tenant(tmp_path: Path) -> None:
    store = open_store(None, tmp_path)
    try:
        key, secret = create_key(store, "acme", "ci")
        assert secret.startswith(f"rlm_{key.key_id}_")
        assert key_id_of(secret) == key.key_id
        stored = store.get_api_key(key.key_id)
        assert stored is not None
        assert stored.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
        assert secret not in repr(stored)
        assert authenticate(store, secret) == Principal(tenant="acme", user="ci")
        assert authenticate(store, secret + "x") is None
        assert authenticate(store, f"rlm_{key.key_id}_guess") is None
        assert authenticate(store, "not-a-key") is None
        revoke(store, key.key_id)
        assert authenticate(store, secret) is None
        with pytest.raises(ConfigurationError):
            revoke(store, "0000000000000000")
    finally:
        store.close()


@pytest.mark.parametrize("tenant", ["", "Acme", "a b", "x" * 65, "a/b"])
def test_a_tenant_name_must_be_a_plain_label(tmp_path: Path, tenant: str) -> None:
    store = open_store(None, tmp_path)
    try:
        with pytest.raises(ConfigurationError):
            create_key(store, tenant)
        assert not store.any_api_keys()
    finally:
        store.close()


# --- requests --------------------------------------------------------------------------


async def test_without_keys_every_request_is_the_local_tenant(
    start_sim: StartSim, tmp_path: Path
) -> None:
    sim = await start_sim(policy=CallablePolicy(answering("'x'")))
    async with running_api(api_settings(tmp_path / "home", sim.url)) as api, api.client() as c:
        created = await c.post("/v1/sessions", json={"name": "doc", "context": "text"})
        assert created.status_code == 201, created.text
        session = api.services.store.get_session(created.json()["session_id"])
        assert session is not None and session.tenant == "local"
    # SDKs send a token whatever the server needs (OpenAI's always does): still local.
    settings = api_settings(tmp_path / "home2", sim.url)
    async with running_api(settings) as api, api.client("sk-anything") as c:
        created = await c.post("/v1/sessions", json={"name": "doc", "context": "text"})
        assert created.status_code == 201, created.text
        listed = await c.get("/v1/sessions")
        assert [s["session_id"] for s in listed.json()["sessions"]] == [
            created.json()["session_id"]
        ]


async def test_once_a_key_exists_every_api_request_needs_one(
    start_sim: StartSim, tmp_path: Path
) -> None:
    sim = await start_sim(policy=CallablePolicy(answering("'x'")))
    async with running_api(api_settings(tmp_path / "home", sim.url)) as api:
        secret = api.key("acme")
        async with api.client() as anonymous:
            for path in ("/v1/runs", "/v1/sessions", "/v1/stats", "/api/stats"):
                reply = await anonymous.get(path)
                assert reply.status_code == 401, path
                assert reply.headers["WWW-Authenticate"] == "Bearer"
                assert reply.json()["error"]["type"] == "AuthenticationError"
            for path in ("/healthz", "/readyz", "/openapi.json", "/docs"):
                assert (await anonymous.get(path)).status_code == 200, path
        async with api.client("rlm_0123456789abcdef_wrong") as wrong:
            assert (await wrong.get("/v1/runs")).status_code == 401
        async with api.client(secret) as keyed:
            assert (await keyed.get("/v1/runs")).status_code == 200


async def test_a_revoked_key_is_refused_at_once(start_sim: StartSim, tmp_path: Path) -> None:
    sim = await start_sim(policy=CallablePolicy(answering("'x'")))
    async with running_api(api_settings(tmp_path / "home", sim.url)) as api:
        secret = api.key("acme")
        async with api.client(secret) as keyed:
            assert (await keyed.get("/v1/sessions")).status_code == 200
            key_id = key_id_of(secret)
            assert key_id is not None
            revoke(api.services.store, key_id)
            assert (await keyed.get("/v1/sessions")).status_code == 401
        # That was the only key: the server must not fall back to open, keyless access.
        async with api.client() as anonymous:
            assert (await anonymous.get("/v1/sessions")).status_code == 401


async def _a_run_of(api: Api, secret: str) -> tuple[str, str]:
    """A finished run of the key's tenant, in a session of it: (run id, session id)."""
    async with api.client(secret) as c:
        session_id = (
            await c.post("/v1/sessions", json={"name": "doc", "context": "secret text"})
        ).json()["session_id"]
        await c.put(f"/v1/sessions/{session_id}/memory/k", json={"value": 1})
        submitted = await c.post("/v1/runs", json={"question": "q", "session_id": session_id})
        assert submitted.status_code == 202, submitted.text
        run_id = submitted.json()["run_id"]
        assert (await wait_terminal(c, run_id))["status"] == "completed"
    return run_id, session_id


async def test_another_tenants_ids_answer_404_and_reveal_nothing(
    start_sim: StartSim, tmp_path: Path
) -> None:
    sim = await start_sim(policy=CallablePolicy(answering("'mine'")))
    async with running_api(api_settings(tmp_path / "home", sim.url)) as api:
        alice, bob = api.key("alice"), api.key("bob")
        run_id, session_id = await _a_run_of(api, alice)
        async with api.client(bob) as c:
            tries = [
                ("GET", f"/v1/runs/{run_id}"),
                ("GET", f"/v1/runs/{run_id}/tree"),
                ("GET", f"/v1/runs/{run_id}/events"),
                ("GET", f"/v1/runs/{run_id}/export?format=md"),
                ("POST", f"/v1/runs/{run_id}/cancel"),
                ("POST", f"/v1/runs/{run_id}/resume"),
                ("DELETE", f"/v1/runs/{run_id}"),
                ("GET", f"/api/executions/{run_id}/tree"),
                ("GET", f"/v1/sessions/{session_id}"),
                ("GET", f"/v1/sessions/{session_id}/memory"),
                ("GET", f"/v1/sessions/{session_id}/memory/k"),
                ("DELETE", f"/v1/sessions/{session_id}/memory/k"),
                ("DELETE", f"/v1/sessions/{session_id}"),
            ]
            for method, path in tries:
                reply = await c.request(method, path)
                assert reply.status_code == 404, (method, path, reply.text)
                assert "secret text" not in reply.text and "mine" not in reply.text
            put = await c.put(f"/v1/sessions/{session_id}/memory/k", json={"value": 2})
            assert put.status_code == 404
            asked = await c.post("/v1/runs", json={"question": "q", "session_id": session_id})
            assert asked.status_code == 404
            assert (await c.get("/v1/runs")).json() == {"runs": [], "next_cursor": None}
            assert (await c.get("/v1/sessions")).json() == {"sessions": []}
            assert (await c.get("/v1/stats")).json()["totals"]["calls"] == 0
        async with api.client(alice) as c:  # all still there for its owner
            assert (await c.get(f"/v1/runs/{run_id}")).json()["answer"] == "mine"
            memory = (await c.get(f"/v1/sessions/{session_id}/memory/k")).json()
            assert memory["value"] == 1


# --- the command line ------------------------------------------------------------------


def _rlm(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def test_keys_create_list_revoke() -> None:
    code, out, _ = _rlm(["keys", "create", "--tenant", "acme", "--name", "ci"])
    assert code == 0
    secret = out.strip()
    key_id = key_id_of(secret)
    assert key_id is not None
    code, out, _ = _rlm(["keys", "list", "--json"])
    listed = json.loads(out)
    assert [(k["key_id"], k["tenant"], k["name"]) for k in listed] == [(key_id, "acme", "ci")]
    assert secret not in out and "secret_hash" not in out
    assert _rlm(["keys", "revoke", key_id])[0] == 0
    listed = json.loads(_rlm(["keys", "list", "--json"])[1])
    assert listed[0]["revoked_at"] is not None
    code, _, err = _rlm(["keys", "revoke", "ffffffffffffffff"])
    assert code == 2 and "no API key" in err


def test_serve_refuses_a_public_host_without_a_key() -> None:
    code, _, err = _rlm(["serve", "--host", "0.0.0.0"])
    assert code == 2
    assert "rlm keys create --tenant NAME" in err
    with pytest.raises(ConfigurationError):
        check_bind("example.org", has_keys=False)
    check_bind("0.0.0.0", has_keys=True)
    check_bind("127.0.0.1", has_keys=False)
    assert is_loopback("localhost") and is_loopback("::1") and is_loopback("127.0.0.2")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.1")


async def test_cors_answers_only_the_configured_origins(
    start_sim: StartSim, tmp_path: Path
) -> None:
    sim = await start_sim(policy=CallablePolicy(answering("'x'")))
    settings = api_settings(tmp_path / "home", sim.url, cors_origins=("http://ui.test",))
    async with running_api(settings) as api, api.client() as c:
        asked = {"Access-Control-Request-Method": "POST"}
        ok = await c.options("/v1/runs", headers={"Origin": "http://ui.test", **asked})
        assert ok.headers["access-control-allow-origin"] == "http://ui.test"
        other = await c.options("/v1/runs", headers={"Origin": "http://evil.test", **asked})
        assert "access-control-allow-origin" not in other.headers


async def test_the_principal_is_one_dependency_tests_can_swap(
    start_sim: StartSim, tmp_path: Path
) -> None:
    sim = await start_sim(policy=CallablePolicy(answering("'x'")))
    async with running_api(api_settings(tmp_path / "home", sim.url)) as api:
        api.key("acme")  # would make anonymous requests 401
        api.app.dependency_overrides[get_principal] = lambda: Principal("t1", "u1")
        async with api.client() as c:
            created = await c.post("/v1/sessions", json={"name": "n", "context": "c"})
        assert created.status_code == 201
        session = api.services.store.get_session(created.json()["session_id"])
        assert session is not None and session.tenant == "t1"
