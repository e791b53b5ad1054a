"""``rlm models``: the providers, which of their variables are set (never values), and
whether the local servers they talk to answer."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from rlm_engine.cli.local_servers import (
    CONFIGURED_SERVERS,
    LOCAL_SERVERS,
    Probe,
    is_loopback,
    probe_all,
    server_url,
)
from rlm_engine.settings import Settings

if TYPE_CHECKING:
    from rlm_engine.lm.registry import ProviderInfo


def _targets(env: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """Provider -> (url, how to start it) for every server worth probing."""
    targets: dict[str, tuple[str, str]] = {}
    for server in (*LOCAL_SERVERS, *CONFIGURED_SERVERS):
        url = server_url(server, env)
        # A remote OPENAI_BASE_URL is a hosted API: asking it tells nothing about setup.
        if url is None or (server.provider == "openai" and not is_loopback(url)):
            continue
        targets[server.provider] = (url, server.start)
    return targets


def _state(info: ProviderInfo, probe: Probe | None) -> str:
    if not info.installed:
        return "not installed"
    if not info.ready:
        return "not set up"
    return probe.state if probe is not None else "ready"


def _as_dict(info: ProviderInfo, probe: Probe | None) -> dict[str, Any]:
    server = None
    if probe is not None:
        server = {
            "url": probe.url,
            "state": probe.state,
            "detail": probe.detail,
            "models": list(probe.models),
        }
    return {
        "provider": info.name,
        "description": info.description,
        "state": _state(info, probe),
        "ready": _state(info, probe) == "ready",
        "installed": info.installed,
        "extra": info.extra,
        "variables": {var.name: var.is_set for var in info.env},
        "missing": list(info.missing),
        "server": server,
    }


def run_models(args: argparse.Namespace) -> int:
    from rlm_engine.lm.registry import provider_status

    settings = Settings.from_env()
    infos = provider_status(settings.env)
    targets = _targets(settings.env)
    names = [name for name in targets if any(i.name == name and i.ready for i in infos)]
    probes = dict(zip(names, probe_all([targets[name] for name in names]), strict=True))
    if args.json:
        print(json.dumps([_as_dict(info, probes.get(info.name)) for info in infos]))
        return 0
    for info in infos:
        probe = probes.get(info.name)
        print(f"{info.name:<12} {_state(info, probe):<14} {info.description}")
        if probe is not None:
            print(f"    server {probe.url}: {probe.detail}")
        for var in info.env:
            print(f"    {var.name:<22} {'set' if var.is_set else 'not set':<8} {var.description}")
        if not info.installed and info.extra:
            print(f"    install: pip install 'rlm-engine[{info.extra}]'")
    configured = settings.model or "(none: pass --model or set RLM_MODEL)"
    print(f"\nRLM_MODEL: {configured}")
    return 0
