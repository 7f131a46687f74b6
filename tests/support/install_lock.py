"""A lock around installing a tool the tests fetch on first use (a venv of its own, a download
under .cache/): `make test` runs test files in two processes (pytest-xdist), and two files that
need the same tool must not install it into one folder at once."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def install_lock(target: Path) -> Iterator[None]:
    """Held by one process at a time for `target`; the caller checks, inside it, whether the
    tool is there yet, and installs it if not."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.with_name(f".{target.name}.install-lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
