"""The long-term store: items under namespaces, shared across threads (LangGraph's BaseStore)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from langgraph.store.base import BaseStore, InvalidNamespaceError, Item, SearchItem

from stead.errors import Unprocessable


class StoreService:
    def __init__(self, store: BaseStore, *, refresh_on_read: bool = True) -> None:
        self._store = store
        self._refresh_on_read = refresh_on_read

    async def put(
        self, namespace: list[str], key: str, value: dict[str, Any], index: Any, ttl: float | None
    ) -> None:
        _check_namespace(namespace)
        options: dict[str, Any] = {} if index is None else {"index": index}
        if ttl is not None:  # else the store's `store.ttl.default_ttl` applies
            _check_ttl(ttl)
            options["ttl"] = ttl
        with _namespace_errors_are_422():
            await self._store.aput(tuple(namespace), key, value, **options)

    async def get(
        self, namespace: list[str], key: str, refresh_ttl: bool | None
    ) -> dict[str, Any] | None:
        with _namespace_errors_are_422():
            item = await self._store.aget(
                tuple(namespace), key, refresh_ttl=self._refreshes(refresh_ttl)
            )
        return item_to_json(item) if item is not None else None

    async def delete(self, namespace: list[str], key: str) -> None:
        with _namespace_errors_are_422():
            await self._store.adelete(tuple(namespace), key)

    async def search(
        self,
        namespace_prefix: list[str],
        *,
        filter: dict[str, Any] | None,
        limit: int,
        offset: int,
        query: str | None,
        refresh_ttl: bool | None,
    ) -> list[dict[str, Any]]:
        _check_filter(filter or {})
        with _namespace_errors_are_422():
            items = await self._store.asearch(
                tuple(namespace_prefix),
                filter=filter,
                limit=limit,
                offset=offset,
                query=query,
                refresh_ttl=self._refreshes(refresh_ttl),
            )
        return [item_to_json(item) for item in items]

    def _refreshes(self, refresh_ttl: bool | None) -> bool:
        """Whether a read extends the TTL of what it reads: as asked, else `refresh_on_read`."""
        return self._refresh_on_read if refresh_ttl is None else refresh_ttl

    async def namespaces(
        self,
        *,
        prefix: list[str] | None,
        suffix: list[str] | None,
        max_depth: int | None,
        limit: int,
        offset: int,
    ) -> list[list[str]]:
        with _namespace_errors_are_422():
            found = await self._store.alist_namespaces(
                prefix=tuple(prefix) if prefix else None,
                suffix=tuple(suffix) if suffix else None,
                max_depth=max_depth,
                limit=limit,
                offset=offset,
            )
        return [list(namespace) for namespace in found]


def _check_namespace(namespace: list[str]) -> None:
    if not namespace:
        raise Unprocessable("Namespace must not be empty")
    for label in namespace:
        if not label or "." in label:
            raise Unprocessable(
                f"Namespace label '{label}' must be a non-empty string without periods"
            )


# The comparisons LangGraph's stores understand in a filter such as `{"age": {"$gt": 30}}`.
FILTER_OPERATORS = frozenset({"$eq", "$ne", "$gt", "$gte", "$lt", "$lte"})
# LangGraph's SQLite store writes filter keys into its SQL text and refuses any other character;
# the same rule on every runtime keeps the API the same whichever database is behind it.
_FILTER_KEY = re.compile(r"[a-zA-Z0-9_.-]+")


def _check_ttl(minutes: float) -> None:
    """The store adds the TTL to the current time; Python's datetimes end at year 9999, so a TTL
    past that (or as far before now) would fail inside the store."""
    try:
        datetime.now(UTC) + timedelta(minutes=minutes)
    except OverflowError:
        raise Unprocessable(f"ttl of {minutes} minutes is out of range") from None


def _check_filter(filter: dict[str, Any]) -> None:
    for key, condition in filter.items():
        if not _FILTER_KEY.fullmatch(key):
            raise Unprocessable(
                f"Filter key {key!r} may hold only letters, digits, '_', '.' and '-'"
            )
        if isinstance(condition, dict):
            unknown = sorted(set(condition) - FILTER_OPERATORS)
            if unknown:
                raise Unprocessable(
                    f"Unknown filter operator(s) {', '.join(unknown)} for {key!r}; "
                    f"use {', '.join(sorted(FILTER_OPERATORS))}"
                )


@contextlib.contextmanager
def _namespace_errors_are_422() -> Iterator[None]:
    """LangGraph's store validates namespace labels (no NUL, no '.', not empty) on its own."""
    try:
        yield
    except InvalidNamespaceError as exc:
        raise Unprocessable(str(exc)) from None


def item_to_json(item: Item) -> dict[str, Any]:
    body = {
        "namespace": list(item.namespace),
        "key": item.key,
        "value": item.value,
        "created_at": _utc(item.created_at),
        "updated_at": _utc(item.updated_at),
    }
    if isinstance(item, SearchItem):
        body["score"] = item.score
    return body


def _utc(moment: datetime) -> datetime:
    # The SQLite store keeps naive UTC timestamps.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
