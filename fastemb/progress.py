"""Progress lines on stderr: rate and ETA, at most one line every `interval` seconds."""
from __future__ import annotations

import sys
import time


def human(n: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.2f}{unit}"
    return f"{n:.0f}"


def seconds(s: float) -> str:
    s = int(round(s))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


class Progress:
    """`update(done, items)` with `done` in the unit of `total` (bytes, tokens...) and `items` the
    count whose rate is shown (tokens). `extra` adds fields such as alpha or loss."""

    def __init__(self, label: str, total: float | None, unit: str = "tokens", quiet: bool = False,
                 interval: float = 2.0, stream=None):
        self.label, self.total, self.unit, self.quiet = label, total, unit, quiet
        self.interval = interval
        self.stream = stream or sys.stderr
        self.start = time.perf_counter()
        self.last = self.start
        self.items = 0

    def update(self, done: float, items: float | None = None, extra: str = "", force=False):
        if items is not None:
            self.items = items
        if self.quiet:
            return
        now = time.perf_counter()
        if not force and now - self.last < self.interval:
            return
        self.last = now
        elapsed = max(now - self.start, 1e-9)
        parts = [self.label]
        if self.total:
            frac = min(done / self.total, 1.0)
            parts.append(f"{100 * frac:5.1f}%")
        parts.append(f"{human(self.items)} {self.unit}")
        parts.append(f"{human(self.items / elapsed)} {self.unit}/s")
        if extra:
            parts.append(extra)
        if self.total and 0 < done < self.total:
            parts.append(f"ETA {seconds(elapsed * (self.total - done) / done)}")
        print("  ".join(parts), file=self.stream, flush=True)

    def done(self, extra: str = ""):
        if self.quiet:
            return
        elapsed = time.perf_counter() - self.start
        rate = self.items / max(elapsed, 1e-9)
        msg = f"{self.label} done: {human(self.items)} {self.unit} in {elapsed:.2f}s ({human(rate)} {self.unit}/s)"
        print(msg + (f"  {extra}" if extra else ""), file=self.stream, flush=True)

    def log(self, message: str):
        if not self.quiet:
            print(message, file=self.stream, flush=True)
