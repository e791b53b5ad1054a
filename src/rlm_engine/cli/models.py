"""``rlm models``: the providers and which of their variables are set (never values)."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from rlm_engine.settings import Settings

if TYPE_CHECKING:
    from rlm_engine.lm.registry import ProviderInfo


def _as_dict(info: ProviderInfo) -> dict[str, Any]:
    return {
        "provider": info.name,
        "description": info.description,
        "ready": info.ready,
        "installed": info.installed,
        "extra": info.extra,
        "variables": {var.name: var.is_set for var in info.env},
        "missing": list(info.missing),
    }


def run_models(args: argparse.Namespace) -> int:
    from rlm_engine.lm.registry import provider_status

    settings = Settings.from_env()
    infos = provider_status(settings.env)
    if args.json:
        print(json.dumps([_as_dict(info) for info in infos]))
        return 0
    for info in infos:
        state = "ready" if info.ready else "not installed" if not info.installed else "not set up"
        print(f"{info.name:<12} {state:<14} {info.description}")
        for var in info.env:
            print(f"    {var.name:<22} {'set' if var.is_set else 'not set':<8} {var.description}")
        if not info.installed and info.extra:
            print(f"    install: pip install 'rlm-engine[{info.extra}]'")
    configured = settings.model or "(none: pass --model or set RLM_MODEL)"
    print(f"\nRLM_MODEL: {configured}")
    return 0
