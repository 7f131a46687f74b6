"""Log lines carry the id of the request they were written for."""

from __future__ import annotations

import contextvars
import logging
import sys

current_request_id: contextvars.ContextVar[str] = contextvars.ContextVar(
    "stead_request_id", default="-"
)


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id.get()
        return True


def configure_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s")
    )
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # httpx logs every request's full URL at INFO: webhook URLs may carry credentials.
    logging.getLogger("httpx").setLevel(logging.WARNING)
