"""The formats `rlm runs export` writes; apart from `export` so the CLI parser stays light."""

from __future__ import annotations

from typing import Literal, get_args

ExportFormat = Literal["ipynb", "jsonl", "md"]
EXPORT_FORMATS: tuple[str, ...] = get_args(ExportFormat)
