"""Progress of the long steps (writing, reading and moving data): a bar on a terminal, drawn by
tqdm; nothing extra when standard error is a log, where the steps' own lines say enough."""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Callable, Iterator
from typing import BinaryIO

from tqdm import tqdm

Advance = Callable[[int], object]


@contextlib.contextmanager
def progress_bar(label: str, total: int, unit: str = "B") -> Iterator[Advance]:
    """A bar of `total` units; the caller advances it by how many were done."""
    bar = tqdm(
        total=total,
        desc=label,
        unit=unit,
        unit_scale=True,
        unit_divisor=1024 if unit == "B" else 1000,
        disable=None,  # off unless standard error is a terminal
        file=sys.stderr,
        leave=False,
        dynamic_ncols=True,
    )
    try:
        yield bar.update
    finally:
        bar.close()


class CountedReader(io.RawIOBase):
    """A binary file that advances a bar by the bytes read from it."""

    def __init__(self, raw: BinaryIO, advance: Advance) -> None:
        self._raw = raw
        self._advance = advance

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._raw.read(len(buffer))
        buffer[: len(data)] = data
        self._advance(len(data))
        return len(data)

    def seekable(self) -> bool:
        return self._raw.seekable()

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()
