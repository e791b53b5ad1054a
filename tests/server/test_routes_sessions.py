"""/v1/sessions: create from JSON text, a server-side path, a streamed multipart upload or
a raw body; the size limit before and while reading; list, get, delete; memory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from routes_support import answering, api_settings, running_api

from rlm_engine.sim.policies import CallablePolicy
from rlm_engine.store.pinned_context import restore_context
from rlm_engine.store.protocol import Store
from sim_support import StartSim


def _pinned_bytes(store: Store, session_id: str, scratch: Path) -> bytes:
    """The context a session pinned, rebuilt from the store (what a run would read)."""
    session = store.get_session(session_id)
    assert session is not None
    [path] = restore_context(store, session.data["context_key"], scratch)
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    assert len(files) == 1
    return files[0].read_bytes()


async def test_create_from_text_list_get_delete(start_sim: StartSim, tmp_path: Path) -> None:
    sim = await start_sim(policy=CallablePolicy(answering("'x'")))
    async with running_api(api_settings(tmp_path / "home", sim.url)) as api, api.client() as c:
        created = await c.post("/v1/sessions", json={"name": "notes", "context": "héllo"})
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["name"] == "notes" and body["context_bytes"] == len("héllo".encode())
        assert body["session_id"].startswith("ses_")
        sid = body["session_id"]
        assert (await c.get(f"/v1/sessions/{sid}")).json() == body
        listed = (await c.get("/v1/sessions")).json()["sessions"]
        assert [s["session_id"] for s in listed] == [sid]
        assert (await c.delete(f"/v1/sessions/{sid}")).status_code == 204
        assert (await c.get(f"/v1/sessions/{sid}")).status_code == 404


async def test_multipart_upload_is_streamed_into_the_store(
    start_sim: StartSim, tmp_path: Path
) -> None:
    sim = await start_sim(policy=CallablePolicy(answering("'x'")))
    content = b"line of text\n" * 200_000  # 2.6 MB, many transport chunks
    async with running_api(api_settings(tmp_path / "home", sim.url)) as api, api.client() as c:
        reply = await c.post(
            "/v1/sessions",
            data={"name": "big doc"},
            files={"file": ("big.txt", content, "text/plain")},
        )
        assert reply.status_code == 201, reply.text
        body = reply.json()
        assert body["name"] == "big doc"
        assert body["filename"] == "big.txt"
        assert body["context_bytes"] == len(content)
        assert _pinned_bytes(api.services.store, body["session_id"], tmp_path / "out") == content


async def test_multipart_without_a_name_takes_the_file_name(
    start_sim: StartSim, tmp_path: Path
) -> None:
    sim = await start_sim(policy=CallablePolicy(answering("'x'")))
    async with running_api(api_settings(tmp_path / "home", sim.url)) as api, api.client() as c:
        reply = await c.post("/v1/sessions", files={"file": ("../../etc/r.md", b"# hi\n")})
        assert reply.status_code == 201, reply.text
        assert reply.json()["name"] == "../../etc/r.md"
        assert reply.json()["filename"] == "r.md"  # never a path on the server
        missing = await c.post("/v1/sessions", files={"other": ("x.txt", b"x")})
        assert missing.status_code == 400
        assert missing.json()["error"]["type"] == "BadUploadError"


async def test_raw_body_upload(start_sim: StartSim, tmp_path: Path) -> None:
    sim = await start_sim(policy=CallablePolicy(answering("'x'")))
    async with running_api(api_settings(tmp_path / "home", sim.url)) as api, api.client() as c:
        reply = await c.post(
            "/v1/sessions?name=raw&filename=data.csv",
            content=b"a,b\n1,2\n",
            headers={"Content-Type": "application/octet-stream"},
        )
        assert reply.status_code == 201, reply.text
        assert reply.json()["filename"] == "data.csv"
        assert (
            _pinned_bytes(api.services.store, reply.json()["session_id"], tmp_path / "out")
            == b"a,b\n1,2\n"
        )
        odd = await c.post("/v1/sessions", content=b"x", headers={"Content-Type": "text/csv"})
        assert odd.status_code == 415


async def test_oversized_uploads_get_413_and_keep_nothing(
    start_sim: StartSim, tmp_path: Path
) -> None:
    sim = await start_sim(policy=CallablePolicy(answering("'x'")))
    settings = api_settings(tmp_path / "home", sim.url, max_context_bytes=1000)
    async with running_api(settings) as api, api.client() as c:
        declared = await c.post(
            "/v1/sessions", files={"file": ("big.txt", b"x" * (2 * 1024 * 1024))}
        )
        assert declared.status_code == 413
        assert declared.json()["error"]["type"] == "ContextTooLargeError"

        async def chunked() -> AsyncIterator[bytes]:  # no Content-Length
            for _ in range(40):
                yield b"y" * 65536

        undeclared = await c.post(
            "/v1/sessions?name=big",
            content=chunked(),
            headers={"Content-Type": "application/octet-stream"},
        )
        assert undeclared.status_code == 413
        # Within the body limit but over the context limit: the service's own check.
        just_over = await c.post(
            "/v1/sessions", files={"file": ("f.txt", b"z" * 1001)}, data={"name": "f"}
        )
        assert just_over.status_code == 413
        text = await c.post("/v1/sessions", json={"name": "t", "context": "w" * 1001})
        assert text.status_code == 413
        assert (await c.get("/v1/sessions")).json() == {"sessions": []}
        uploads = tmp_path / "home" / "uploads"
        assert not uploads.exists() or not any(uploads.rglob("*.txt"))


async def test_server_side_paths_only_under_the_allowed_roots(
    start_sim: StartSim, tmp_path: Path
) -> None:
    sim = await start_sim(policy=CallablePolicy(answering("'x'")))
    allowed = tmp_path / "shared"
    allowed.mkdir()
    (allowed / "doc.txt").write_text("allowed text")
    (tmp_path / "private.txt").write_text("private")
    settings = api_settings(tmp_path / "home", sim.url, allowed_paths=(allowed,))
    async with running_api(settings) as api, api.client() as c:
        ok = await c.post("/v1/sessions", json={"name": "p", "path": str(allowed / "doc.txt")})
        assert ok.status_code == 201, ok.text
        assert ok.json()["context_bytes"] == len("allowed text")
        for path in (str(tmp_path / "private.txt"), str(allowed / ".." / "private.txt")):
            refused = await c.post("/v1/sessions", json={"name": "p", "path": path})
            assert refused.status_code == 403, path
            assert refused.json()["error"]["type"] == "PathNotAllowedError"


async def test_bad_json_bodies_are_422(start_sim: StartSim, tmp_path: Path) -> None:
    sim = await start_sim(policy=CallablePolicy(answering("'x'")))
    async with running_api(api_settings(tmp_path / "home", sim.url)) as api, api.client() as c:
        for body in (b"{not json", b"[]", b'{"name": "x"}', b'{"name": "", "context": "x"}'):
            reply = await c.post(
                "/v1/sessions", content=body, headers={"Content-Type": "application/json"}
            )
            assert reply.status_code == 422, body
            assert reply.json()["error"]["message"]


async def test_session_memory_put_get_list_delete(start_sim: StartSim, tmp_path: Path) -> None:
    sim = await start_sim(policy=CallablePolicy(answering("'x'")))
    async with running_api(api_settings(tmp_path / "home", sim.url)) as api, api.client() as c:
        sid = (await c.post("/v1/sessions", json={"name": "m", "context": "c"})).json()[
            "session_id"
        ]
        put = await c.put(f"/v1/sessions/{sid}/memory/colour", json={"value": {"hex": "#fff"}})
        assert put.status_code == 200
        assert put.json()["value"] == {"hex": "#fff"}
        got = await c.get(f"/v1/sessions/{sid}/memory/colour")
        assert got.json()["value"] == {"hex": "#fff"}
        listed = (await c.get(f"/v1/sessions/{sid}/memory")).json()["items"]
        assert [i["key"] for i in listed] == ["colour"]
        assert (await c.delete(f"/v1/sessions/{sid}/memory/colour")).status_code == 204
        assert (await c.get(f"/v1/sessions/{sid}/memory/colour")).status_code == 404
        assert (await c.delete(f"/v1/sessions/{sid}/memory/colour")).status_code == 404
        assert (await c.put(f"/v1/sessions/{sid}/memory/k", json={})).status_code == 422
