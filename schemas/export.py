"""Write the JSON Schema of every topic's event to schemas/json/ for producers in any language.

Run `python -m schemas.export`; a test fails when the files drift from the models.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from schemas.topics import TOPICS

JSON_DIR = Path(__file__).resolve().parent / "json"


def topic_schemas() -> dict[str, dict[str, Any]]:
    out = {}
    for spec in TOPICS:
        schema = spec.model.model_json_schema(mode="validation")
        schema["$id"] = f"https://jax.dev/schemas/{spec.name}.schema.json"
        schema["description"] = f"Kafka topic `{spec.name}`: {spec.description}."
        out[spec.name] = schema
    return out


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def main() -> int:
    JSON_DIR.mkdir(exist_ok=True)
    for name, schema in topic_schemas().items():
        (JSON_DIR / f"{name}.schema.json").write_text(render(schema))
        print(f"wrote {JSON_DIR / (name + '.schema.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
