"""Fixtures for the model-layer tests (simulators come from tests/conftest.py)."""

from __future__ import annotations

import pytest
from lm_support import SleepRecorder


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()
