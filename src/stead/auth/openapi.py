"""The OpenAPI document says how to authenticate, so generated clients and /docs can, and which
refusals that adds to every operation behind it."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from stead.api.openapi import ErrorBody
from stead.auth.options import AuthOptions

_API_KEY_SCHEME = {"type": "apiKey", "in": "header", "name": "x-api-key"}
# Custom auth may read anything; a bearer token is what most handlers take, so it is the
# default until `auth.openapi` describes the real scheme.
_BEARER_SCHEME = {"type": "http", "scheme": "bearer"}


def with_security(app: FastAPI, options: AuthOptions) -> dict[str, Any]:
    first_time = app.openapi_schema is None
    schema = FastAPI.openapi(app)
    if first_time and options.enabled:
        _describe_security(schema, options)
    return schema


def _describe_security(schema: dict[str, Any], options: AuthOptions) -> None:
    schemes = dict(options.openapi.get("securitySchemes") or {})
    if not schemes and options.custom is not None and options.custom.authenticates:
        schemes["BearerAuth"] = _BEARER_SCHEME
    if options.api_keys:
        schemes["ApiKeyAuth"] = _API_KEY_SCHEME
    schema.setdefault("components", {})["securitySchemes"] = schemes
    # Every listed scheme is needed at once: with API keys on, custom auth comes on top.
    schema["security"] = options.openapi.get("security") or [{name: [] for name in schemes}]
    refusals = _refusals(schema, options)
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            if options.is_open(path):
                operation["security"] = []
            else:
                operation.setdefault("responses", {}).update(refusals)


def _refusals(schema: dict[str, Any], options: AuthOptions) -> dict[str, Any]:
    """401 for a missing or bad credential; 403 when custom auth may refuse an authenticated
    user (an `@auth.on` handler, or `@auth.authenticate` raising 403 or failing an assert)."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.setdefault(ErrorBody.__name__, ErrorBody.model_json_schema())
    body = {"application/json": {"schema": {"$ref": f"#/components/schemas/{ErrorBody.__name__}"}}}
    refusals = {"401": {"description": "Not authenticated", "content": body}}
    if options.custom is not None:
        refusals["403"] = {"description": "Forbidden", "content": body}
    return refusals
