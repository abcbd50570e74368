"""The order-event contract as JSON Schema, for producers not written in Python.

`producer/schema.json` is `OrderEvent.model_json_schema()` written out (a unit test fails when it
drifts from the model). Regenerate it after a change to the contract:

    python -m producer.schema
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

from salesstream.core.contract import OrderEvent

SCHEMA_PATH: Final = Path(__file__).with_name("schema.json")


def contract_schema() -> dict[str, Any]:
    schema = OrderEvent.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def schema_text() -> str:
    return json.dumps(contract_schema(), indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    SCHEMA_PATH.write_text(schema_text())
    print(f"wrote {SCHEMA_PATH.name}")


if __name__ == "__main__":
    main()
