"""Progress of long command-line work: a bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

__all__ = ("Progress", "human_bytes")


def human_bytes(count: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    raise AssertionError("unreachable")


class Progress:
    """Records and bytes done of a known (or unknown) total, with the rate and an ETA.

    On a terminal one line is redrawn at most 10 times a second; otherwise a plain line is
    written at every tenth of the total (every ``every`` records when the total is unknown)
    and a summary at the end, so logs stay short.
    """

    def __init__(
        self,
        label: str,
        *,
        records: int | None = None,
        size: int | None = None,
        stream: TextIO | None = None,
        tty: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
        every: int = 1000,
    ) -> None:
        self.label = label
        self.total_records = records
        self.total_bytes = size
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.clock = clock
        self.every = every
        self.records = 0
        self.bytes = 0
        self.started = clock()
        self._drawn = float("-inf")
        self._step = -1

    def advance(self, records: int = 0, size: int = 0) -> None:
        self.records += records
        self.bytes += size
        if self.tty:
            now = self.clock()
            if now - self._drawn >= 0.1:
                self._drawn = now
                self.stream.write("\r" + self._line(bar=True) + "\x1b[K")
                self.stream.flush()
            return
        step = self._tenths() if self._fraction() is not None else self.records // self.every
        if step > self._step:
            self._step = step
            self.stream.write(self._line(bar=False) + "\n")
            self.stream.flush()

    def finish(self) -> None:
        elapsed = max(self.clock() - self.started, 1e-9)
        if self.tty:
            self.stream.write("\r\x1b[K")
        self.stream.write(
            f"{self.label}: {self.records:,} records, {human_bytes(self.bytes)} in "
            f"{elapsed:.1f} s ({self.records / elapsed:,.0f} records/s)\n"
        )
        self.stream.flush()

    def _fraction(self) -> float | None:
        if self.total_records:
            return min(self.records / self.total_records, 1.0)
        if self.total_bytes:
            return min(self.bytes / self.total_bytes, 1.0)
        return None

    def _tenths(self) -> int:
        fraction = self._fraction()
        return int((fraction or 0.0) * 10)

    def _line(self, *, bar: bool) -> str:
        elapsed = max(self.clock() - self.started, 1e-9)
        fraction = self._fraction()
        records = f"{self.records:,}" + (
            f"/{self.total_records:,}" if self.total_records is not None else ""
        )
        parts = [self.label]
        if bar and fraction is not None:
            filled = int(fraction * 20)
            parts.append("[" + "#" * filled + "-" * (20 - filled) + "]")
        parts += [
            f"{records} records",
            human_bytes(self.bytes),
            f"{self.records / elapsed:,.0f} records/s",
        ]
        if fraction:
            parts.append(f"ETA {elapsed * (1 - fraction) / fraction:.0f} s")
        return "  ".join(parts)
