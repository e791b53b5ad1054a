"""Helpers shared by the model-layer tests."""

from __future__ import annotations


class SleepRecorder:
    """An injected ``sleep`` that records the requested waits instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
