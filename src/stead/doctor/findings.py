"""What a check found."""

from __future__ import annotations

from dataclasses import dataclass

OK = "ok"
WARNING = "warning"
FAILED = "failed"


@dataclass(frozen=True)
class Finding:
    check: str
    status: str
    message: str
    fix: str | None = None

    def line(self) -> str:
        fix = f" (fix: {self.fix})" if self.fix else ""
        return f"{self.status:<8} {self.check}: {self.message}{fix}"


def ok(check: str, message: str) -> Finding:
    return Finding(check, OK, message)


def warning(check: str, message: str, fix: str) -> Finding:
    return Finding(check, WARNING, message, fix)


def failed(check: str, message: str, fix: str) -> Finding:
    return Finding(check, FAILED, message, fix)
