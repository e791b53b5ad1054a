"""The plugins an RLM runs unless told otherwise, in order."""

from __future__ import annotations

from rlm_engine.plugins.base import Plugin
from rlm_engine.plugins.format import FormatPlugin
from rlm_engine.plugins.lint import LintPlugin
from rlm_engine.plugins.safety import SafetyPlugin
from rlm_engine.plugins.telemetry import TelemetryPlugin


def default_plugins() -> list[Plugin]:
    """Safety, format, lint, telemetry. Instructions are added when some are given."""
    return [SafetyPlugin(), FormatPlugin(), LintPlugin(), TelemetryPlugin()]
