"""signalling/openapi.yaml: valid OpenAPI 3.1, covers every /api/ route, matches responses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

import jsonschema
import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from openapi_spec_validator import OpenAPIV31SpecValidator
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.api_support import SECRET_B, auth, auth_jwt, lesson_body, make_app

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
SPEC_URI = "urn:test:openapi"


def load_spec() -> dict[str, Any]:
    text = resources.files("signalling").joinpath("openapi.yaml").read_text("utf-8")
    return yaml.safe_load(text)


SPEC = load_spec()
REGISTRY: Registry = Registry().with_resource(
    SPEC_URI, Resource.from_contents(SPEC, default_specification=DRAFT202012)
)


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    """Follow a local $ref ("#/components/…") in the spec."""
    while "$ref" in node:
        target: Any = SPEC
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def spec_operations() -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in SPEC["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


def app_api_routes(app: web.Application) -> set[tuple[str, str]]:
    routes = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if path.startswith("/api/"):
            routes.add((route.method, path))
    return routes


def test_spec_is_valid_openapi_3_1() -> None:
    assert SPEC["openapi"].startswith("3.1")
    OpenAPIV31SpecValidator(SPEC).validate()


def test_spec_errors_are_caught_by_the_validator() -> None:
    """The validator is not a no-op: a broken copy of the spec is refused."""
    broken = yaml.safe_load(yaml.safe_dump(SPEC))
    broken["paths"]["/api/v1/lessons"]["post"]["responses"]["201"] = {"content": 5}
    with pytest.raises(OpenAPIValidationError):
        OpenAPIV31SpecValidator(broken).validate()


def test_every_api_route_is_described_and_nothing_else() -> None:
    app = make_app()  # a bare app + api.setup: where every /api/ route comes from
    routes = app_api_routes(app)
    assert routes, "the app registers no /api/ routes"
    assert routes == spec_operations()


def test_both_auth_forms_are_described() -> None:
    schemes = SPEC["components"]["securitySchemes"]
    assert {s["scheme"] for s in schemes.values()} == {"bearer"}
    assert any(s.get("bearerFormat") == "JWT" for s in schemes.values())
    assert {name for req in SPEC["security"] for name in req} == set(schemes)
    # Only the description itself is public.
    public = [
        (path, method)
        for path, item in SPEC["paths"].items()
        for method, op in item.items()
        if method in HTTP_METHODS and op.get("security") == []
    ]
    assert public == [("/api/v1/openapi.yaml", "get")]


def test_request_examples_validate_against_their_schemas() -> None:
    for name in ("LessonCreate", "TokenRequest"):
        validator = schema_validator(SPEC["components"]["schemas"][name])
        for example in SPEC["components"]["schemas"][name]["examples"]:
            validator.validate(example)


def schema_validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    """A validator for a schema taken from the spec, its $refs resolved in the spec."""
    return jsonschema.Draft202012Validator(_rebase(schema), registry=REGISTRY)


def _rebase(node: Any) -> Any:
    """Point every local "#/…" $ref at the spec document in the registry."""
    if isinstance(node, dict):
        return {
            k: (SPEC_URI + v if k == "$ref" and v.startswith("#") else _rebase(v))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_rebase(v) for v in node]
    return node


def response_schema(template: str, method: str, status: int) -> dict[str, Any] | None:
    """The JSON schema the spec gives for this operation and status (fails if undocumented)."""
    operation = SPEC["paths"][template][method.lower()]
    responses = operation["responses"]
    assert str(status) in responses, f"{method} {template} answered {status}, not in the spec"
    response = resolve(responses[str(status)])
    content = response.get("content", {})
    if "application/json" not in content:
        return None
    return content["application/json"]["schema"]


@pytest.fixture
async def client() -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(make_app())) as test_client:
        yield test_client


async def test_responses_match_the_spec(client: TestClient) -> None:
    exercised: set[tuple[str, str, int]] = set()

    async def call(
        method: str,
        template: str,
        expected: int,
        *,
        lesson_id: str = "",
        json: Any = None,
        data: bytes | None = None,
        query: str = "",
        headers: dict[str, str] | None = None,
    ) -> Any:
        path = template.replace("{lesson_id}", lesson_id) + query
        resp = await client.request(
            method, path, json=json, data=data, headers=auth() if headers is None else headers
        )
        assert resp.status == expected, await resp.text()
        body = await resp.json() if resp.content_type == "application/json" else None
        schema = response_schema(template, method, resp.status)
        if schema is not None:
            assert resp.content_type == "application/json"
            schema_validator(schema).validate(body)
        exercised.add((method, template, resp.status))
        return body

    lessons = "/api/v1/lessons"
    one = "/api/v1/lessons/{lesson_id}"
    open_ = "/api/v1/lessons/{lesson_id}/open"
    tokens = "/api/v1/lessons/{lesson_id}/tokens"

    example = SPEC["components"]["schemas"]["LessonCreate"]["examples"][0]
    await call("POST", lessons, 201, json=example)
    lesson = await call("POST", lessons, 201, json=lesson_body("7b"), headers=auth_jwt())
    lid = lesson["id"]
    await call("POST", lessons, 409, json=lesson_body("7b"))
    await call("POST", lessons, 400, json=lesson_body("7c", extra=1))
    await call("POST", lessons, 400, data=b"{oops")
    await call("POST", lessons, 401, json=lesson_body("7c"), headers={})
    await call("POST", lessons, 413, json=lesson_body("7c", subject="x" * 300_000))
    await call("GET", lessons, 200)
    await call("GET", lessons, 200, query="?group_id=7b&active=true")
    await call("GET", lessons, 400, query="?active=sometimes")
    await call("GET", one, 200, lesson_id=lid)
    await call("GET", one, 404, lesson_id="les_missing")
    await call("GET", one, 404, lesson_id=lid, headers=auth(SECRET_B))
    await call("GET", one, 401, lesson_id=lid, headers={"Authorization": "Bearer nope"})
    await call("POST", open_, 200, lesson_id=lid)
    await call("POST", open_, 404, lesson_id="les_missing")
    student = {"user": {"id": "s-1", "name": "Иван"}, "role": "student"}
    await call("POST", tokens, 201, lesson_id=lid, json=student)
    stranger = {"user": {"id": "x-9", "name": "Некто"}, "role": "student"}
    await call("POST", tokens, 403, lesson_id=lid, json=stranger)
    await call("POST", tokens, 400, lesson_id=lid, json={"role": "student"})
    await call("POST", tokens, 404, lesson_id="les_missing", json=student)
    await call("DELETE", one, 200, lesson_id=lid)
    await call("DELETE", one, 200, lesson_id=lid)
    await call("DELETE", one, 404, lesson_id="les_missing")
    await call("POST", open_, 409, lesson_id=lid)
    await call("POST", tokens, 409, lesson_id=lid, json=student)

    resp = await client.get("/api/v1/openapi.yaml")
    assert resp.status == 200
    assert response_schema("/api/v1/openapi.yaml", "GET", 200) is None
    assert (
        "application/yaml"
        in resolve(SPEC["paths"]["/api/v1/openapi.yaml"]["get"]["responses"]["200"])["content"]
    )
    assert yaml.safe_load(await resp.text()) == SPEC

    # Every operation was exercised with at least its success status.
    successes = {(m, t) for m, t, s in exercised if s < 300}
    assert successes | {("GET", "/api/v1/openapi.yaml")} == spec_operations()


def test_schema_check_is_not_a_no_op() -> None:
    """The response check refuses a body the spec does not allow."""
    schema = response_schema("/api/v1/lessons", "POST", 201)
    assert schema is not None
    with pytest.raises(jsonschema.ValidationError):
        schema_validator(schema).validate({"id": "les_x"})
    error_schema = response_schema("/api/v1/lessons", "POST", 409)
    assert error_schema is not None
    with pytest.raises(jsonschema.ValidationError):
        schema_validator(error_schema).validate(
            {"error": {"code": "lesson_conflict", "message": "No id."}}
        )
