"""The client → server message schemas as one JSON Schema document, for other clients.

Built from signalling.protocol.SCHEMAS, the very schemas the server checks
frames with, so the published contract cannot drift from the server: it is
served at GET /api/v1/protocol.schema.json and kept in the repository as
docs/protocol.schema.json (tests/test_protocol_document.py checks both).
"""

from __future__ import annotations

import json
from typing import Any

from signalling.protocol import (
    MAX_EXPONENT,
    MAX_JSON_VALUES,
    MAX_NUMBER_CHARS,
    MAX_UNJOINED_BYTES,
    SCHEMAS,
)

# Major: a change an existing client may trip on (a message or field removed,
# a limit lowered). Minor: additions a client may ignore (a new message type,
# a new optional field, a new server message).
PROTOCOL_VERSION = "1.8"


def client_messages_schema() -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "urn:urok:protocol:client-messages",
        "title": "Urok call protocol: messages a client sends (docs/protocol.md)",
        "version": PROTOCOL_VERSION,
        "description": (
            "Each WebSocket text frame is one of these objects. Before `join` only `join`, "
            f"`resume` and `ping` are read and a frame may have at most {MAX_UNJOINED_BYTES} "
            "bytes; a frame may hold at most "
            f"{MAX_JSON_VALUES} JSON values (counted as its '{{', '[' and ',' "
            f"characters) and numbers of at most {MAX_NUMBER_CHARS} characters with an "
            f"exponent within ±{MAX_EXPONENT}. The server answers what breaks these with "
            "an `error` message."
        ),
        "oneOf": [{"$ref": f"#/$defs/{name}"} for name in sorted(SCHEMAS)],
        "$defs": {name: SCHEMAS[name] for name in sorted(SCHEMAS)},
    }


def client_messages_schema_text() -> str:
    return json.dumps(client_messages_schema(), ensure_ascii=False, indent=2) + "\n"
