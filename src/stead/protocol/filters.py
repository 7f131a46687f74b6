"""Which protocol events a subscription asked for: channels, and namespaces with a depth."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from stead import serde
from stead.broker import ThreadEvent
from stead.errors import BadRequest
from stead.protocol.events import CHANNEL_METHODS

_CUSTOM_PREFIX = "custom:"


@dataclass(frozen=True)
class EventFilter:
    """A subscription's filter. Namespaces are prefixes; `depth` is how many more segments an
    event's namespace may have (0: exactly the prefix); None means any."""

    methods: frozenset[str]
    custom_names: frozenset[str]
    namespaces: tuple[tuple[str, ...], ...] | None
    depth: int | None

    def wants(self, event: ThreadEvent) -> bool:
        if not self._wants_method(event):
            return False
        if self.namespaces is None:
            return True
        return any(self._under(event.namespace, prefix) for prefix in self.namespaces)

    def _wants_method(self, event: ThreadEvent) -> bool:
        if event.method in self.methods:
            return True
        if event.method != "custom" or not self.custom_names:
            return False
        name = _custom_name(event)
        return name is not None and name in self.custom_names

    def _under(self, namespace: tuple[str, ...], prefix: tuple[str, ...]) -> bool:
        if namespace[: len(prefix)] != prefix:
            return False
        return self.depth is None or len(namespace) - len(prefix) <= self.depth


def event_filter(params: dict[str, Any]) -> EventFilter:
    """Read `{"channels", "namespaces"?, "depth"?}`; a bad one is the client's error (400)."""
    channels = params.get("channels")
    if not isinstance(channels, list) or not channels:
        raise BadRequest("channels must be a non-empty list")
    methods: set[str] = set()
    custom_names: set[str] = set()
    for channel in channels:
        if isinstance(channel, str) and channel.startswith(_CUSTOM_PREFIX):
            custom_names.add(channel[len(_CUSTOM_PREFIX) :])
        elif isinstance(channel, str) and channel in CHANNEL_METHODS:
            methods.update(CHANNEL_METHODS[channel])
        else:
            raise BadRequest(f"Unknown channel: {channel!r}")
    return EventFilter(
        frozenset(methods),
        frozenset(custom_names),
        _namespaces(params.get("namespaces")),
        _non_negative(params.get("depth"), "depth"),
    )


def replay_point(params: dict[str, Any]) -> int | None:
    """The `since` a reconnecting subscription gives: events after that `seq` replay."""
    return _non_negative(params.get("since"), "since")


def _namespaces(value: Any) -> tuple[tuple[str, ...], ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(_is_namespace(item) for item in value):
        raise BadRequest("namespaces must be a list of lists of strings")
    return tuple(tuple(item) for item in value)


def _is_namespace(item: Any) -> bool:
    return (
        isinstance(item, Sequence)
        and not isinstance(item, str)
        and all(isinstance(segment, str) for segment in item)
    )


def _non_negative(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadRequest(f"{name} must be an integer of at least 0")
    return value


def _custom_name(event: ThreadEvent) -> str | None:
    # Only custom events are parsed, and only when a subscription names custom channels.
    data = serde.loads(event.params).get("data")
    name = data.get("name") if isinstance(data, dict) else None
    return name if isinstance(name, str) else None
