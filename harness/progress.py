"""Progress: a tqdm bar with rate and ETA on a terminal, plain log lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from tqdm import tqdm


class Progress:
    """Counts finished samples. ``interval_s`` spaces the plain lines when not on a terminal."""

    def __init__(
        self,
        total: int | None,
        label: str,
        stream: TextIO | None = None,
        enabled: bool = True,
        interval_s: float = 10.0,
    ) -> None:
        self.stream = stream or sys.stderr
        self.total, self.label, self.enabled = total, label, enabled
        self.count = 0
        self._started = self._last = time.monotonic()
        self._interval = interval_s
        is_tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._bar = (
            tqdm(total=total, desc=label, unit="sample", file=self.stream, dynamic_ncols=True)
            if enabled and is_tty
            else None
        )

    def update(self, n: int = 1) -> None:
        self.count += n
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.monotonic()
        if self.enabled and now - self._last >= self._interval:
            self._last = now
            self._line(now)

    def _line(self, now: float) -> None:
        elapsed = max(now - self._started, 1e-9)
        rate = self.count / elapsed
        total = f"/{self.total}" if self.total is not None else ""
        eta = ""
        if self.total and rate > 0:
            eta = f", ETA {max(self.total - self.count, 0) / rate:.0f}s"
        print(
            f"{self.label}: {self.count}{total} samples ({rate:.1f}/s{eta})",
            file=self.stream,
            flush=True,
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self.enabled and self.count:
            self._line(time.monotonic())
