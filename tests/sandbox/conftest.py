"""Fixtures for the sandbox tests: a scripted host handler and a started LocalSandbox."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sandbox_fakes import FakeHost

from rlm_engine.sandbox.local import LocalSandbox


@pytest.fixture
def host() -> FakeHost:
    return FakeHost()


@pytest.fixture
async def sandbox(host: FakeHost, tmp_path: Path) -> AsyncIterator[LocalSandbox]:
    box = LocalSandbox(host, tools=["lookup", "explode"], workdir_parent=tmp_path)
    await box.start()
    try:
        yield box
    finally:
        await box.close()
