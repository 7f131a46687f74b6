"""Log lines, plain or JSON (`LOG_JSON`), at `LOG_LEVEL`; each carries the ids of the request
and the run it was written for.

Stead's modules log through the standard library; every record, theirs and those of uvicorn and
the user's graphs alike, is rendered as structlog renders it, with the ids bound in context
variables (a plain line's usual record by a shorter way: `PlainLineFormatter`).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Any

import structlog
from structlog.typing import Processor

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _drop_color_message(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """uvicorn passes its message a second time, with terminal colour codes, as an extra."""
    event.pop("color_message", None)
    return event


# Fields every line has, before the renderer: the field names the official server's JSON uses.
_SHARED: list[Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]
# Records of the standard library's loggers: their `extra` fields become fields too.
_FOREIGN: list[Processor] = [*_SHARED, structlog.stdlib.ExtraAdder(), _drop_color_message]


def _add_message(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """JSON lines carry the text as `message` too, the field log shippers look for; `event` is
    the official server's name for it."""
    event["message"] = event.get("event")
    return event


class PlainLines:
    """structlog's ConsoleRenderer without colours, its usual line built directly.

    The renderer assembles each field through its column formatters: about half of what a
    line cost, on a server that writes three a run (the request, the run's start and end).
    A line with a traceback or a stack goes to the renderer itself; tests/integration/
    test_logs.py checks that both give the same text.
    """

    _EVENT_WIDTH = 30  # ConsoleRenderer's default pad_event_to

    def __init__(self) -> None:
        self._renderer = structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
        levels = structlog.dev.ConsoleRenderer.get_default_level_styles(colors=False)
        self._level_width = len(max(levels, key=len))

    def __call__(self, logger: Any, method: str, event: MutableMapping[str, Any]) -> str:
        if "exception" in event or "exc_info" in event or "stack" in event:
            return self._renderer(logger, method, event)
        timestamp, level, text, name, other_name = (
            event.pop(key, _ABSENT)
            for key in ("timestamp", "level", "event", "logger", "logger_name")
        )
        fields = [
            "" if timestamp is _ABSENT else str(timestamp),
            "" if level is _ABSENT else f"[{level:<{self._level_width}}]",
            "" if text is _ABSENT else f"{text!s:<{self._EVENT_WIDTH}}",
            "" if name is _ABSENT else f"[{name}]",
            "" if other_name is _ABSENT else f"[{other_name}]",
            *(f"{key}={_plain_repr(event[key])}" for key in sorted(event)),
        ]
        return " ".join(field for field in fields if field).rstrip(" ")


class PlainLineFormatter(structlog.stdlib.ProcessorFormatter):
    """The formatter of plain lines. The usual record (a standard library logger's, without a
    traceback: nearly every line) is rendered here, from the fields the `_FOREIGN` chain gathers,
    without the copy of the record and the chain of processors the ProcessorFormatter goes
    through: 6 µs a line instead of 13, where a request's line was a tenth of a search's CPU.
    Any other record goes through the ProcessorFormatter. tests/integration/test_logs.py checks
    that both ways give the same line."""

    def __init__(self) -> None:
        self._lines = PlainLines()
        super().__init__(
            foreign_pre_chain=_FOREIGN,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, self._lines],
        )
        self._second = -1
        self._second_text = ""

    def format(self, record: logging.LogRecord) -> str:
        fields = vars(record)
        if record.exc_info or record.exc_text or record.stack_info or "_logger" in fields:
            return super().format(record)
        event: dict[str, Any] = {"event": record.getMessage()}
        for key, value in structlog.contextvars.get_contextvars().items():
            event.setdefault(key, value)
        method = record.levelname.lower()
        event["level"] = method
        event["logger"] = record.name
        event["timestamp"] = self._timestamp(record.created)
        for key, value in fields.items():
            if key not in _RECORD_KEYS:
                event[key] = value
        event.pop("color_message", None)
        return self._lines(None, method, event)

    def _timestamp(self, created: float) -> str:
        """`created` as structlog's ISO UTC stamp writes a time: no fraction at a whole second."""
        second = int(created)
        if second != self._second:
            self._second = second
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        micros = int((created - second) * 1_000_000)
        return f"{self._second_text}.{micros:06d}Z" if micros else f"{self._second_text}Z"


# What every record has: anything else came as an `extra` and is a field (as ExtraAdder does).
_RECORD_KEYS = frozenset(vars(logging.LogRecord("name", 0, "pathname", 0, "msg", (), None)))
_ABSENT = object()
_QUOTED_IF_IN = frozenset(" \t=\r\n\"'")


def _plain_repr(value: Any) -> str:
    """A field's value as ConsoleRenderer writes it: strings bare unless they need quotes."""
    if isinstance(value, str) and _QUOTED_IF_IN.isdisjoint(value):
        return value
    return repr(value)


def configure_logging(level: str = "INFO", json_lines: bool = False) -> None:
    formatter = _json_line_formatter() if json_lines else PlainLineFormatter()
    # No line shows them: skip collecting them for every record (the logging HOWTO's advice).
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    # Nor the caller's file and line: finding them walks the stack for every record.
    logging._srcfile = None  # type: ignore[attr-defined]
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    logging.basicConfig(level=level, handlers=[handler], force=True)
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_SHARED,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    logging.getLogger("alembic").setLevel(max(logging.WARNING, logging.getLevelName(level)))
    # httpx logs every request's full URL at INFO: webhook URLs may carry credentials.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLevelName(level)))


def _json_line_formatter() -> logging.Formatter:
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_FOREIGN,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _add_message,
            structlog.processors.JSONRenderer(default=str),
        ],
    )


@contextmanager
def log_context(ids: Mapping[str, Any]) -> Iterator[None]:
    """Every line logged inside the block, in this task and the tasks it starts, carries `ids`."""
    with structlog.contextvars.bound_contextvars(**ids):
        yield


def run_ids(run: Mapping[str, Any]) -> dict[str, Any]:
    """The ids a line written while executing `run` carries, with the id of the request that
    created it when there was one."""
    ids = {key: run.get(key) for key in ("run_id", "thread_id", "assistant_id")}
    configurable = run.get("kwargs", {}).get("config", {}).get("configurable", {})
    if configurable.get("graph_id"):
        ids["graph_id"] = configurable["graph_id"]
    if configurable.get("langgraph_request_id"):
        ids["request_id"] = configurable["langgraph_request_id"]
    return ids
