"""JSON Schema checks in bounded time, for the protocol and the HTTP API alike.

jsonschema-rs validates in native code and stops at the first error, so a
check costs microseconds per value, never the square of a list's length; the
documents it sees are already bounded in size and structure (see
signalling.protocol.decode_json).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import jsonschema_rs


@dataclass(frozen=True)
class SchemaError:
    """The first way a document breaks its schema."""

    keyword: str  # the failing JSON Schema keyword: required, type, maxItems…
    path: tuple[str | int, ...]  # where in the document
    detail: dict[str, Any] = field(default_factory=dict)  # e.g. {"limit": 8}
    message: str = ""

    @property
    def json_path(self) -> str:
        """The path as `$.roster[3].id`."""
        return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in self.path)

    def describe(self) -> str:
        """A short message that names the limit rather than quoting the value."""
        limit = self.detail.get("limit")
        if self.keyword in ("maxItems", "maxProperties"):
            return f"at most {limit} entries"
        if self.keyword == "maxLength":
            return f"at most {limit} characters"
        if self.keyword == "additionalProperties":
            unexpected = [str(k)[:40] for k in self.detail.get("unexpected", [])[:3]]
            return f"unknown field(s): {', '.join(unexpected)}"
        return self.message[:200]


class SchemaCheck:
    """One compiled schema (Draft 2020-12); `resources` are the documents its
    `$ref`s point into, merged into the root."""

    def __init__(self, schema: dict[str, Any], resources: dict[str, Any] | None = None) -> None:
        self._validator = jsonschema_rs.Draft202012Validator({**(resources or {}), **schema})

    def first_error(self, instance: Any) -> SchemaError | None:
        try:
            self._validator.validate(instance)
        except jsonschema_rs.ValidationError as exc:
            return SchemaError(
                keyword=exc.kind.name,
                path=tuple(exc.instance_path),
                detail=exc.kind.as_dict(),
                message=exc.message,
            )
        except (ValueError, RecursionError):  # a value jsonschema-rs cannot take in
            return SchemaError(keyword="nesting", path=(), message="nested too deeply")
        return None
