"""Progress and logging.

The library logs through `logging.getLogger("fastemb")` and prints nothing of its own: a Python caller sees
nothing unless it configures logging or asks for `verbose=True`. A pass in progress is a `Progress`: with
bars on (the CLI in a terminal or a notebook, or `verbose=True` there) it is a tqdm bar; otherwise it emits
an INFO record at most every `interval` seconds (rate, ETA, loss), which the CLI prints as plain lines when
stderr is not a terminal, and `--quiet` drops.
"""
from __future__ import annotations

import contextlib
import contextvars
import logging
import sys
import time

log = logging.getLogger("fastemb")
log.addHandler(logging.NullHandler())


class ParamNames(logging.Filter):
    """Renders parameter names in records (errors.param): API names, or CLI flags once the CLI sets `flags`."""

    flags = None

    def filter(self, record):
        from fastemb.errors import render
        msg = record.getMessage()
        if "\ue000" in msg:
            record.msg, record.args = render(msg, self.flags), ()
        return True


PARAM_NAMES = ParamNames()
log.addFilter(PARAM_NAMES)

_BARS: contextvars.ContextVar[bool] = contextvars.ContextVar("fastemb_bars", default=False)


def human(n: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.2f}{unit}"
    return f"{n:.0f}"


def human_bytes(n: float) -> str:
    """1.2 MB, 340 kB, 12 B."""
    for unit, div in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= div:
            return f"{n / div:.1f} {unit}"
    return f"{n:.0f} B"


def seconds(s: float) -> str:
    s = int(round(s))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    try:
        return shell is not None and type(shell.get_ipython()).__name__ == "ZMQInteractiveShell"
    except Exception:
        return False


def bars_possible(stream=None) -> bool:
    stream = stream or sys.stderr
    try:
        return _in_notebook() or bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class _TqdmAwareHandler(logging.StreamHandler):
    """Writes records through tqdm when a bar is on screen, so lines do not tear the bar."""

    def emit(self, record):
        try:
            msg = self.format(record)
            tqdm = sys.modules.get("tqdm")
            if tqdm is not None and getattr(tqdm.tqdm, "_instances", None):
                tqdm.tqdm.write(msg, file=self.stream)
            else:
                self.stream.write(msg + "\n")
            self.flush()
        except Exception:  # never let a broken stderr take training down
            self.handleError(record)


def stderr_handler(level=logging.INFO) -> logging.Handler:
    h = _TqdmAwareHandler(sys.stderr)
    h.setFormatter(logging.Formatter("%(message)s"))
    h.setLevel(level)
    return h


@contextlib.contextmanager
def verbosity(verbose: bool):
    """The API's `verbose=`: True shows bars (terminal, notebook) and INFO lines on stderr for the call,
    unless the caller has configured logging itself (then its handlers decide)."""
    if not verbose:
        yield
        return
    handler = None
    old_level = log.level
    log.setLevel(logging.INFO)
    if not _reaches_stderr():
        handler = stderr_handler()
        log.addHandler(handler)
    token = _BARS.set(bars_possible())
    try:
        yield
    finally:
        _BARS.reset(token)
        log.setLevel(old_level)
        if handler is not None:
            log.removeHandler(handler)


def _reaches_stderr() -> bool:
    """Does a handler of the "fastemb" logger or its ancestors already print to stderr?"""
    logger = log
    while logger is not None:
        for h in logger.handlers:
            if isinstance(h, logging.StreamHandler) and getattr(h, "stream", None) in (sys.stderr, sys.__stderr__):
                return True
        logger = logger.parent if logger.propagate else None
    return False


def set_bars(on: bool):
    """For the CLI: bars for the whole process."""
    _BARS.set(on)


def set_cli_quiet():
    """--quiet: nothing but errors (which the CLI prints itself), no bars."""
    _BARS.set(False)
    for h in log.handlers:
        if not isinstance(h, logging.NullHandler):
            h.setLevel(logging.CRITICAL + 1)


class Progress:
    """`update(done, items)` with `done` in the unit of `total` (bytes, tokens...) and `items` the
    count whose rate is shown. `extra` adds fields such as alpha or loss."""

    def __init__(self, label: str, total: float | None, unit: str = "tokens", interval: float = 2.0):
        self.label, self.total, self.unit, self.interval = label, total, unit, interval
        self.start = time.perf_counter()
        self.last = self.start
        self.items = 0
        self.bar = None
        if _BARS.get():
            from tqdm.auto import tqdm
            self.bar = tqdm(total=total, desc=label, unit="" if total is None else "", leave=False,
                            dynamic_ncols=True, mininterval=0.25, file=sys.stderr,
                            bar_format="{desc} {percentage:3.0f}%|{bar}| {elapsed}<{remaining} {postfix}"
                            if total else "{desc} {elapsed} {postfix}")
            self._shown = 0.0

    def rebase(self, done: float, items: float | None = None):
        """Measure rate and ETA from here on (after a first step that compiled kernels): the time before
        does not predict the time after."""
        self._base = (time.perf_counter(), done, self.items if items is None else items)

    def update(self, done: float, items: float | None = None, extra: str = "", force=False):
        if items is not None:
            self.items = items
        now = time.perf_counter()
        base = getattr(self, "_base", None)
        elapsed = max(now - self.start, 1e-9)
        rate_items, rate_time, eta_done = self.items, elapsed, done
        if base is not None:  # rate and ETA from the work done since the rebase (none yet: no ETA)
            if done > base[1]:
                rate_time, rate_items, eta_done = max(now - base[0], 1e-9), self.items - base[2], done - base[1]
            else:
                eta_done = 0
        if self.bar is not None:
            if self.total:
                step = min(done, self.total) - self._shown
                if step > 0:
                    self.bar.update(step)
                    self._shown += step
            self.bar.set_postfix_str(f"{human(rate_items / rate_time)} {self.unit}/s  {extra}".strip(), refresh=False)
            if force:
                self.bar.refresh()
            return
        if not log.isEnabledFor(logging.INFO) or (not force and now - self.last < self.interval):
            return
        self.last = now
        parts = [self.label]
        if self.total:
            parts.append(f"{100 * min(done / self.total, 1.0):5.1f}%")
        parts.append(f"{human(self.items)} {self.unit}")
        parts.append(f"{human(rate_items / rate_time)} {self.unit}/s")
        if extra:
            parts.append(extra)
        if self.total and 0 < done < self.total and eta_done > 0:
            parts.append(f"ETA {seconds(rate_time * (self.total - done) / eta_done)}")
        log.info("  ".join(parts))

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def done(self, extra: str = ""):
        self.close()
        elapsed = time.perf_counter() - self.start
        rate = self.items / max(elapsed, 1e-9)
        log.info(f"{self.label} done: {human(self.items)} {self.unit} in {elapsed:.2f}s ({human(rate)} "
                 f"{self.unit}/s)" + (f"  {extra}" if extra else ""))

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
