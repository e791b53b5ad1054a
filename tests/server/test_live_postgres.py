"""The real server on Postgres: a 20 MB upload, a run streamed over SSE, its tree and stats."""

from __future__ import annotations

from pathlib import Path

from server_support import Launch, StartSimThread, live_flow


def test_a_20mb_upload_answers_over_sse_on_postgres(
    launch: Launch, sim_thread: StartSimThread, tmp_path: Path, postgres_url: str
) -> None:
    live_flow(launch, sim_thread, tmp_path, store_url=postgres_url)
