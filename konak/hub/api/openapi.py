"""The OpenAPI 3.1 document of the JSON API, built from the route table and the pydantic
request models."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from konak.hub.api.http import Handler, declared
from konak.hub.security.rbac import ANONYMOUS, Action


@dataclass(frozen=True, slots=True)
class ApiRoute:
    """One route: method, path, handler, the body it takes and the statuses it answers."""

    method: str
    path: str
    handler: Handler
    name: str
    body: type[BaseModel] | None = None
    ok_status: int = 200
    query: type[BaseModel] | None = None
    streams: str | None = None  # the media type of a streamed success (text/event-stream)
    uploads: tuple[str, ...] = ()  # the media types of a streamed, non-JSON request body


_ERRORS = {
    "400": "invalid body or parameters",
    "401": "not signed in, or the token is expired, invalid or revoked",
    "403": "the role does not allow this",
    "404": "no such resource in this tenant",
    "409": "the resource exists already, or changed since it was read",
    "413": "body too large",
    "415": "body is not JSON",
    "422": "the body is well formed but refused (see error.details)",
    "429": "rate limited (see Retry-After)",
    "503": "a dependency (broker, rate-limit store, mail) is unavailable",
}


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """The query parameters of a route, with the bounds its model checks."""
    schema = model.model_json_schema()
    required = set(schema.get("required", ()))
    params = []
    for name, prop in schema["properties"].items():
        # An optional field is ``anyOf: [T, null]``; a query parameter is absent instead.
        options = [p for p in prop.get("anyOf", [prop]) if p.get("type") != "null"]
        param_schema = {k: v for k, v in options[0].items() if k != "title"}
        params.append(
            {"name": name, "in": "query", "required": name in required, "schema": param_schema}
        )
    return params


def build_openapi(routes: Sequence[ApiRoute], title: str = "Konak hub API") -> dict[str, Any]:
    """The document served at /api/openapi.json."""
    schemas: dict[str, Any] = {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {
                        "code": {"type": "string"},
                        "message": {"type": "string"},
                        "details": {"type": "array", "items": {"type": "object"}},
                    },
                }
            },
        }
    }
    paths: dict[str, Any] = {}
    for route in routes:
        action = declared(route.handler)
        assert action is not None, f"{route.name} declares no action"
        operation: dict[str, Any] = {
            "operationId": route.name,
            "summary": (route.handler.__doc__ or "").strip().splitlines()[0],
            "x-konak-action": action.value,
            "responses": {
                str(route.ok_status): {"description": "success"},
                **{
                    status: {
                        "description": text,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                        },
                    }
                    for status, text in _ERRORS.items()
                },
            },
        }
        if route.streams is not None:
            success = operation["responses"][str(route.ok_status)]
            success["content"] = {route.streams: {"schema": {"type": "string"}}}
        if action not in ANONYMOUS:
            operation["security"] = [{"bearer": []}]
        elif action is Action.PUBLIC:
            operation["security"] = []
        params = [
            {"name": part[1:-1], "in": "path", "required": True, "schema": {"type": "string"}}
            for part in route.path.split("/")
            if part.startswith("{")
        ]
        if route.query is not None:
            params += _query_parameters(route.query)
        if params:
            operation["parameters"] = params
        if route.body is not None:
            name = route.body.__name__
            schema = route.body.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(schema.pop("$defs", {}))
            schemas[name] = schema
            operation["requestBody"] = {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}
                },
            }
        if route.uploads:
            operation["requestBody"] = {
                "required": True,
                "content": {media: {"schema": {"type": "string"}} for media in route.uploads},
            }
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": "1"},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
        "security": [],
    }
