"""Write the JSON schema of the engine's events to web/schema/events.schema.json.

`npm run gen` turns it into TypeScript types; rerun this when `rlm_engine.events` changes:
    uv run python web/scripts/dump_event_schema.py
"""

from __future__ import annotations

import json
from pathlib import Path

from rlm_engine.events import event_json_schema


def main() -> None:
    target = Path(__file__).resolve().parent.parent / "schema" / "events.schema.json"
    target.write_text(json.dumps(event_json_schema(), indent=2, sort_keys=True) + "\n")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
