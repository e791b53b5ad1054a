"""Plugins: ordered hooks around runs, model calls and cells."""

from rlm_engine.plugins.base import (
    Allow,
    Amend,
    Block,
    CellDecision,
    CellInfo,
    ModelCallInfo,
    Plugin,
    RunInfo,
)
from rlm_engine.plugins.chain import PluginChain, PluginError, load_entry_point_plugins
from rlm_engine.plugins.defaults import default_plugins
from rlm_engine.plugins.format import FormatPlugin
from rlm_engine.plugins.instructions import InstructionsPlugin
from rlm_engine.plugins.lint import LintPlugin
from rlm_engine.plugins.safety import SafetyPlugin
from rlm_engine.plugins.telemetry import TelemetryPlugin

__all__ = [
    "Allow",
    "Amend",
    "Block",
    "CellDecision",
    "CellInfo",
    "FormatPlugin",
    "InstructionsPlugin",
    "LintPlugin",
    "ModelCallInfo",
    "Plugin",
    "PluginChain",
    "PluginError",
    "RunInfo",
    "SafetyPlugin",
    "TelemetryPlugin",
    "default_plugins",
    "load_entry_point_plugins",
]
