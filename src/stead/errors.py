"""Errors a service raises for the API to turn into `{"detail": ...}` responses."""

from __future__ import annotations

from collections.abc import Mapping


class ApiError(Exception):
    status_code = 500

    def __init__(self, detail: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = dict(headers or {})


class AuthError(ApiError):
    """Refused by authentication or an authorization handler, with the status it chose."""

    def __init__(
        self, status_code: int, detail: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(detail, headers)
        self.status_code = status_code


class BadRequest(ApiError):
    status_code = 400


class Forbidden(ApiError):
    status_code = 403


class NotFound(ApiError):
    status_code = 404


class Conflict(ApiError):
    status_code = 409


class Unprocessable(ApiError):
    status_code = 422


class FailedDependency(ApiError):
    """A graph factory failed: the request was fine but the graph could not be built."""

    status_code = 424
