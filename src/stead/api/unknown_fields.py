"""Unknown fields in request bodies: ignored, as the official server ignores them, and named in
one warning line per request, so that a misspelt option does not go unnoticed."""

from __future__ import annotations

import contextvars
import functools
import logging
import typing
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("stead.api")

# A body may carry any number of keys of any length: the warning names a few, shortened.
MAX_NAMED_FIELDS = 10
MAX_NAME_LENGTH = 64

# The fields the bodies of the current request ignored, in order (a dict as an ordered set);
# None outside a request.
_ignored_in_request: contextvars.ContextVar[dict[str, None] | None] = contextvars.ContextVar(
    "stead_ignored_body_fields", default=None
)


def note_unknown_fields(model: type[BaseModel], data: Mapping[str, Any]) -> None:
    """Remember the keys of ``data`` (and of the objects nested in it) that ``model`` ignores."""
    ignored = _ignored_in_request.get()
    if ignored is not None:
        ignored.update(dict.fromkeys(unknown_fields(model, data)))


def unknown_fields(
    model: type[BaseModel], data: Mapping[str, Any], prefix: str = ""
) -> Iterator[str]:
    """Dotted paths of the keys no field of ``model`` (or of its nested models) takes."""
    known, nested = _fields_of(model)
    for key, value in data.items():
        if key not in known:
            yield f"{prefix}{key}"
        elif key in nested and isinstance(value, Mapping):
            yield from unknown_fields(nested[key], value, f"{prefix}{key}.")


@functools.cache
def _fields_of(model: type[BaseModel]) -> tuple[frozenset[str], dict[str, type[BaseModel]]]:
    """The keys ``model`` takes, and the model behind each field that holds an object."""
    known = set(model.model_fields)
    known |= {field.alias for field in model.model_fields.values() if field.alias}
    # A field that admits several models (a union of them) is not looked into: which one an
    # object is meant for is the validator's business.
    nested = {
        name: models[0]
        for name, field in model.model_fields.items()
        if len(models := list(_models_in(field.annotation))) == 1
    }
    return frozenset(known), nested


def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    """The models an annotation such as ``CheckpointRef | str | None`` admits."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for argument in typing.get_args(annotation):
        yield from _models_in(argument)


class UnknownFieldsWarningMiddleware:
    """Collect the fields a request's body validation ignored; log them once, with the route,
    when the response starts."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ignored: dict[str, None] = {}
        token = _ignored_in_request.set(ignored)
        reported = False

        def report() -> None:
            nonlocal reported
            if ignored and not reported:
                reported = True
                logger.warning(
                    "%s %s: ignored unknown body field(s) %s",
                    scope["method"],
                    getattr(scope.get("route"), "path", scope["path"]),
                    _names(ignored),
                )

        async def send_reporting(message: Message) -> None:
            if message["type"] == "http.response.start":
                report()
            await send(message)

        try:
            await self.app(scope, receive, send_reporting)
        finally:
            report()
            _ignored_in_request.reset(token)


def _names(fields: Iterable[str]) -> str:
    """Quoted (so a name cannot break the log line), shortened, at most MAX_NAMED_FIELDS."""
    listed = list(fields)
    shown = ", ".join(repr(name[:MAX_NAME_LENGTH]) for name in listed[:MAX_NAMED_FIELDS])
    hidden = len(listed) - MAX_NAMED_FIELDS
    return f"{shown} and {hidden} more" if hidden > 0 else shown
