"""The lean HTTP path sends its headers with every request, from the session defaults."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from rlm_engine.lm.openai_direct import DirectChat


async def test_every_request_carries_auth_content_type_and_extra_headers() -> None:
    seen: list[dict[str, str]] = []

    async def reply(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        body: dict[str, Any] = await request.json()
        return web.json_response({"echo": body["n"]})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", reply)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # pyright: ignore
    chat = DirectChat(
        provider="openai",
        base_url=f"http://127.0.0.1:{port}/v1/",
        api_key="k-1",
        headers={"X-Extra": "yes"},
    )
    try:
        replies = [
            await chat.post({"n": n}, timeout_s=t) for n, t in ((1, 5.0), (2, 5.0), (3, 7.0))
        ]
    finally:
        await chat.aclose()
        await runner.cleanup()
    assert replies == [{"echo": 1}, {"echo": 2}, {"echo": 3}]
    assert len(seen) == 3
    for headers in seen:
        assert headers["Authorization"] == "Bearer k-1"
        assert headers["Content-Type"] == "application/json"
        assert headers["X-Extra"] == "yes"
        assert headers["User-Agent"].startswith("rlm-engine")
