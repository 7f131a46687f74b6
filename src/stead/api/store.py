"""Store routes: cross-thread memory items under namespaces."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from stead.api.deps import AuthzDep, RuntimeDep
from stead.api.models import StoreDelete, StoreNamespaces, StorePut, StoreSearch
from stead.api.openapi import errors, returns
from stead.api.resources import Item, Namespaces, SearchItems
from stead.api.responses import json_response, no_content
from stead.api.routing import DirectRoute
from stead.errors import AuthError, BadRequest

router = APIRouter(tags=["store"], responses=errors(422), route_class=DirectRoute)


@router.put("/store/items", status_code=204)
async def put_item(body: StorePut, rt: RuntimeDep, authz: AuthzDep) -> Response:
    value: dict[str, Any] = {
        "namespace": tuple(body.namespace),
        "key": body.key,
        "value": body.value,
        "index": body.index,
    }
    await authz.filter("store", "put", value)
    await rt.store_items.put(
        _labels(value["namespace"]), value["key"], value["value"], value["index"], body.ttl
    )
    return no_content()


@router.get(
    "/store/items",
    responses={**returns(Item | None, "The item, or null if there is none"), **errors(400)},
)
async def get_item(
    rt: RuntimeDep,
    authz: AuthzDep,
    key: str | None = None,
    namespace: str = "",
    refresh_ttl: bool | None = None,
) -> Response:
    if not key:
        raise BadRequest("Key is required")
    value: dict[str, Any] = {
        "namespace": tuple(namespace.split(".") if namespace else ()),
        "key": key,
    }
    await authz.filter("store", "get", value)
    item = await rt.store_items.get(_labels(value["namespace"]), value["key"], refresh_ttl)
    return json_response(item)


@router.delete("/store/items", status_code=204)
async def delete_item(body: StoreDelete, rt: RuntimeDep, authz: AuthzDep) -> Response:
    value: dict[str, Any] = {"namespace": tuple(body.namespace or ()), "key": body.key}
    await authz.filter("store", "delete", value)
    await rt.store_items.delete(_labels(value["namespace"]), value["key"])
    return no_content()


@router.post("/store/items/search", responses=returns(SearchItems))
async def search_items(body: StoreSearch, rt: RuntimeDep, authz: AuthzDep) -> Response:
    value: dict[str, Any] = {
        "namespace": tuple(body.namespace_prefix or ()),
        "filter": body.filter,
        "limit": body.limit,
        "offset": body.offset,
        "query": body.query,
    }
    # A filter the handler returns narrows the items' values, on top of the client's own.
    extra = await authz.filter("store", "search", value)
    items = await rt.store_items.search(
        _labels(value["namespace"]),
        filter={**(value["filter"] or {}), **(extra or {})} or None,
        limit=value["limit"],
        offset=value["offset"],
        query=value["query"],
        refresh_ttl=body.refresh_ttl,
    )
    return json_response({"items": items})


@router.post("/store/namespaces", responses=returns(Namespaces))
async def list_namespaces(body: StoreNamespaces, rt: RuntimeDep, authz: AuthzDep) -> Response:
    value: dict[str, Any] = {
        "namespace": tuple(body.prefix) if body.prefix else None,
        "suffix": tuple(body.suffix) if body.suffix else None,
        "max_depth": body.max_depth,
        "limit": body.limit,
        "offset": body.offset,
    }
    await authz.filter("store", "list_namespaces", value)
    prefix, suffix = value["namespace"], value["suffix"]
    found = await rt.store_items.namespaces(
        prefix=_labels(prefix) if prefix else None,
        suffix=_labels(suffix) if suffix else None,
        max_depth=value["max_depth"],
        limit=value["limit"],
        offset=value["offset"],
    )
    return json_response({"namespaces": found})


def _labels(namespace: Any) -> list[str]:
    """A namespace as the service takes it; handlers may have rewritten it as any sequence.
    Clients' namespaces are validated lists of strings, so a bad one is the handler's bug."""
    if isinstance(namespace, str) or not all(isinstance(label, str) for label in namespace):
        raise AuthError(500, "Authorization handler set an invalid store namespace")
    return list(namespace)
