"""Threads under contention: how many torch threads to run, and how they wait.

A Home Assistant box always has neighbours (Home Assistant itself, speech-to-text, other
add-ons).  torch's CPU build runs its intra-op pool on GNU OpenMP (libgomp), whose threads
spin at every barrier before they sleep (GOMP_SPINCOUNT, 300,000 turns by default when
OMP_WAIT_POLICY is unset).  A decode frame has hundreds of short parallel regions (every
product of every layer step); with another process on one of the two cores, one of our two
threads is off the CPU at most barriers and the other spins for it, so a frame went from 63 to
818 ms (median).  Sleeping at once (OMP_WAIT_POLICY=PASSIVE) costs a futex wake-up per
region, about 60 % on a quiet machine.

What this module does instead (measured: BENCHMARKS.md, "under load"):

- `configure_openmp()`, called by the engine package before torch is imported (libgomp reads
  its environment once, when torch loads it): a bounded spin (OPENMP_DEFAULTS) unless the
  user set OMP_WAIT_POLICY or GOMP_SPINCOUNT themselves.
- `ThreadGovernor`: before each utterance and every `interval` seconds while it runs, the CPU
  time that other processes took on our cores (/proc/stat's busy time minus this process's
  own) says how many cores are really free, and torch's thread count follows it
  (`torch.set_num_threads`, cheap with libgomp: the next parallel region uses the new team).
  With one core busy on a two-core machine we run one thread on the free core instead of two
  threads fighting the neighbour for the second.

No torch import at module level: `configure_openmp` must run before torch is loaded.
"""

from __future__ import annotations

import logging
import os
import time

_LOGGER = logging.getLogger(__name__)

# libgomp spins GOMP_SPINCOUNT turns at a barrier before it sleeps.  Its default (300,000 when
# OMP_WAIT_POLICY is unset) is several milliseconds: more than a frame's products take.
OPENMP_DEFAULTS = {"GOMP_SPINCOUNT": "30000"}
# the variables that, set by the user, mean "leave the waiting policy alone"
_USER_POLICY = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")

# QWEN3_TTS_ADAPT_THREADS=0 keeps the thread count fixed at --threads
ADAPT_ENV = "QWEN3_TTS_ADAPT_THREADS"


def configure_openmp(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Set OPENMP_DEFAULTS in `environ` (os.environ) where the user set no policy; returns
    what was set.  Without effect once torch is imported (then it only logs)."""
    env = os.environ if environ is None else environ
    if any(name in env for name in _USER_POLICY):
        return {}
    chosen = dict(OPENMP_DEFAULTS)
    env.update(chosen)
    import sys

    if environ is None and "torch" in sys.modules:
        _LOGGER.debug("torch was imported before the OpenMP policy was set: %s has no effect",
                      chosen)
    return chosen


def _cpu_set() -> list[int]:
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def _busy_ticks(cpus: list[int]) -> int | None:
    """Non-idle clock ticks of `cpus` since boot (/proc/stat), or None where unreadable."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            lines = f.readlines()
    except OSError:
        return None
    wanted = {f"cpu{c}" for c in cpus}
    total = 0
    found = False
    for line in lines:
        name, _, rest = line.partition(" ")
        if name in wanted:
            # user nice system idle iowait irq softirq steal (guest is in user already)
            values = [int(v) for v in rest.split()[:8]]
            total += sum(values) - values[3] - values[4]
            found = True
    return total if found else None


def _own_ticks() -> int:
    times = os.times()
    hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    return round((times.user + times.system) * hz)


class ThreadGovernor:
    """Chooses torch's intra-op thread count from the CPU other processes are using.

    `threads` is the most we run (--threads, or every physical core); `update()` (called
    before each utterance and between frames) re-measures at most every `interval` seconds
    and sets torch's count to the cores left free, never fewer than one.
    """

    def __init__(self, threads: int, *, interval: float = 0.5, adapt: bool | None = None,
                 clock=time.monotonic, busy=None, own=None) -> None:
        self.max_threads = max(1, threads)
        if adapt is None:
            adapt = os.environ.get(ADAPT_ENV, "1").strip().lower() not in (
                "0", "false", "no", "off")
        self.cpus = _cpu_set()
        self.adapt = adapt and self.max_threads > 1
        self.interval = interval
        self._clock = clock
        self._busy = busy or (lambda: _busy_ticks(self.cpus))
        self._own = own or _own_ticks
        self._hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self.current = self.max_threads
        self.others = 0.0  # cores' worth of CPU the other processes took in the last window
        self._mark = self._sample()

    def _sample(self) -> tuple[float, int | None, int]:
        return self._clock(), self._busy(), self._own()

    def choose(self, others: float) -> int:
        """Threads for a machine where other processes use `others` cores of ours."""
        free = len(self.cpus) - others
        # a core counts as free when less than half of it is taken
        return max(1, min(self.max_threads, int(free + 0.5)))

    def update(self, force: bool = False) -> int:
        """Re-measure if the window is long enough (or `force`); returns the thread count."""
        if not self.adapt:
            return self.current
        now = self._clock()
        if not force and now - self._mark[0] < self.interval:
            return self.current
        sample = self._sample()
        (t0, busy0, own0), (t1, busy1, own1) = self._mark, sample
        if busy0 is None or busy1 is None or t1 - t0 < 0.05:
            return self.current
        self._mark = sample
        others = max(0.0, ((busy1 - busy0) - (own1 - own0)) / self._hz / (t1 - t0))
        self.others = others
        threads = self.choose(others)
        if threads != self.current:
            import torch

            torch.set_num_threads(threads)
            _LOGGER.debug("Other processes use %.2f cores: %d torch thread(s)", others, threads)
            self.current = threads
        return threads
