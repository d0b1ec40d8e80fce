"""The published protocol contract is the server's own: docs/protocol.schema.json."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from signalling.protocol import SCHEMAS, ProtocolError, parse_message
from signalling.protocol_document import (
    PROTOCOL_VERSION,
    client_messages_schema,
    client_messages_schema_text,
)
from tests.test_protocol import CLASSROOM_INVALID, VALID

DOC = Path(__file__).resolve().parent.parent / "docs" / "protocol.schema.json"
VALIDATOR = jsonschema.Draft202012Validator(client_messages_schema())


def test_the_repository_copy_is_what_the_server_serves() -> None:
    # Regenerate with: python -c "from signalling.protocol_document import *;
    # open('docs/protocol.schema.json','w').write(client_messages_schema_text())"
    assert DOC.read_text("utf-8") == client_messages_schema_text()


def test_the_document_is_valid_json_schema_with_a_version() -> None:
    document = json.loads(DOC.read_text("utf-8"))
    jsonschema.Draft202012Validator.check_schema(document)
    assert document["version"] == PROTOCOL_VERSION
    assert set(document["$defs"]) == set(SCHEMAS)
    assert PROTOCOL_VERSION in (Path(DOC.parent / "protocol.md")).read_text("utf-8")


@pytest.mark.parametrize("kind", sorted(VALID))
def test_every_documented_message_is_valid_against_the_document(kind: str) -> None:
    VALIDATOR.validate(VALID[kind])


@pytest.mark.parametrize("message", CLASSROOM_INVALID, ids=lambda m: json.dumps(m)[:60])
def test_what_the_server_refuses_the_document_refuses(message: dict[str, object]) -> None:
    with pytest.raises(ProtocolError):
        parse_message(json.dumps(message), 320 * 1024)
    assert not VALIDATOR.is_valid(message)
