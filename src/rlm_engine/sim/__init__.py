"""An OpenAI-compatible chat-completions simulator on loopback, for tests and benchmarks.

Simulator replies come from policies and measure the engine, never a model's quality.
"""

from rlm_engine.sim.chat_request import RequestRecord
from rlm_engine.sim.config import DEFAULT_SIM_PORT, FAULT_KINDS, FaultKind, SimConfig
from rlm_engine.sim.oracle import OraclePolicy
from rlm_engine.sim.oracle_fanout import FanoutPolicy
from rlm_engine.sim.oracle_registry import OracleRegistry, default_registry
from rlm_engine.sim.policies import (
    CallablePolicy,
    EchoPolicy,
    Policy,
    PolicyExhaustedError,
    ScriptedPolicy,
)
from rlm_engine.sim.runner import SimServerThread, serve
from rlm_engine.sim.server import SimServer

__all__ = [
    "DEFAULT_SIM_PORT",
    "FAULT_KINDS",
    "CallablePolicy",
    "EchoPolicy",
    "FanoutPolicy",
    "FaultKind",
    "OraclePolicy",
    "OracleRegistry",
    "Policy",
    "PolicyExhaustedError",
    "RequestRecord",
    "ScriptedPolicy",
    "SimConfig",
    "SimServer",
    "SimServerThread",
    "default_registry",
    "serve",
]
