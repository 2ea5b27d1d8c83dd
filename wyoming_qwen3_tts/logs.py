"""Logging set-up, with repeated lines held back so that no flood can fill the disk.

A client (or the operating system: `socket.accept() out of system resource` when file
descriptors run out, logged by asyncio with a traceback for every attempt) can make the same
line come thousands of times a second.  `RepeatLimiter` lets the first `burst` records of one
kind (logger, level and message, its numbers aside) through in each `window` seconds; the
rest are counted, and the next record of that kind after the window says how many were held
back.  Only warnings and errors are limited: what a flood produces (refused
connections, failed requests, accept errors); the per-request INFO and DEBUG lines grow with
the work actually done.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import time

_DIGITS = re.compile(r"\d+")


class RepeatLimiter(logging.Filter):
    def __init__(self, burst: int = 10, window: float = 60.0,
                 clock=time.monotonic) -> None:
        super().__init__()
        self.burst = burst
        self.window = window
        self._clock = clock
        self._kinds: dict[tuple, list] = {}  # kind -> [window start, passed, held back]
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        kind = (record.name, record.levelno, _DIGITS.sub("#", record.getMessage()[:200]))
        now = self._clock()
        with self._lock:
            state = self._kinds.get(kind)
            if state is None or now - state[0] >= self.window:
                held = state[2] if state is not None else 0
                self._kinds[kind] = [now, 1, 0]
                if len(self._kinds) > 10_000:  # bounded memory, whatever comes
                    self._kinds = {kind: self._kinds[kind]}
                if held:
                    record.msg = f"{record.msg} [{held} more like this held back in the last " \
                                 f"{self.window:.0f} s]"
                return True
            if state[1] < self.burst:
                state[1] += 1
                return True
            state[2] += 1
            return False


def configure(debug: bool, fmt: str) -> None:
    """Log to stderr at INFO (DEBUG with `debug`), floods held back."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(fmt))
    handler.addFilter(RepeatLimiter())
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO, handlers=[handler],
                        force=True)
