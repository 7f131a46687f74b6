"""Store routes: cross-thread memory items under namespaces."""

from __future__ import annotations

from fastapi import APIRouter, Response

from stead.api.deps import RuntimeDep
from stead.api.models import StoreDelete, StoreNamespaces, StorePut, StoreSearch
from stead.api.openapi import errors
from stead.api.responses import json_response, no_content
from stead.errors import BadRequest

router = APIRouter(tags=["store"], responses=errors(422))


@router.put("/store/items", status_code=204)
async def put_item(body: StorePut, rt: RuntimeDep) -> Response:
    await rt.store_items.put(body.namespace, body.key, body.value, body.index, body.ttl)
    return no_content()


@router.get("/store/items", responses=errors(400))
async def get_item(
    rt: RuntimeDep, key: str | None = None, namespace: str = "", refresh_ttl: bool | None = None
) -> Response:
    if not key:
        raise BadRequest("Key is required")
    labels = namespace.split(".") if namespace else []
    return json_response(await rt.store_items.get(labels, key, refresh_ttl))


@router.delete("/store/items", status_code=204)
async def delete_item(body: StoreDelete, rt: RuntimeDep) -> Response:
    await rt.store_items.delete(body.namespace or [], body.key)
    return no_content()


@router.post("/store/items/search")
async def search_items(body: StoreSearch, rt: RuntimeDep) -> Response:
    items = await rt.store_items.search(
        body.namespace_prefix or [],
        filter=body.filter,
        limit=body.limit,
        offset=body.offset,
        query=body.query,
        refresh_ttl=body.refresh_ttl,
    )
    return json_response({"items": items})


@router.post("/store/namespaces")
async def list_namespaces(body: StoreNamespaces, rt: RuntimeDep) -> Response:
    return json_response({"namespaces": await rt.store_items.namespaces(**body.model_dump())})
