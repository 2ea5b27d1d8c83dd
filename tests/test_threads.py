"""threads.py: the OpenMP policy set before torch loads, and the thread count that follows the
CPU other processes take (fake clocks and tick counters: nothing here is timed)."""

from __future__ import annotations

import subprocess
import sys

import torch

from wyoming_qwen3_tts.engine import threads
from wyoming_qwen3_tts.engine.threads import OPENMP_DEFAULTS, ThreadGovernor, configure_openmp


def test_policy_defaults_only_where_the_user_chose_none():
    env: dict[str, str] = {}
    assert configure_openmp(env) == OPENMP_DEFAULTS and env == OPENMP_DEFAULTS
    for user in ({"OMP_WAIT_POLICY": "PASSIVE"}, {"GOMP_SPINCOUNT": "0"}):
        env = dict(user)
        assert configure_openmp(env) == {} and env == user


def test_policy_is_set_before_torch_is_imported():
    code = ("import os, sys; import wyoming_qwen3_tts.engine; "
            "assert 'torch' not in sys.modules; print(os.environ.get('GOMP_SPINCOUNT'))")
    env = {k: v for k, v in __import__("os").environ.items()
           if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True).stdout.split()[-1]
    assert out == OPENMP_DEFAULTS["GOMP_SPINCOUNT"]


class Fake:
    """A clock and /proc/stat-like tick counters moved by hand (100 ticks per second)."""

    def __init__(self) -> None:
        self.t, self.busy, self.own = 0.0, 0, 0

    def advance(self, seconds: float, others: float, ours: float) -> None:
        self.t += seconds
        self.own += round(100 * seconds * ours)
        self.busy += round(100 * seconds * (others + ours))


def governor(fake: Fake, threads: int = 2, cpus: int = 2) -> ThreadGovernor:
    g = ThreadGovernor(threads, interval=0.5, adapt=True, clock=lambda: fake.t,
                       busy=lambda: fake.busy, own=lambda: fake.own)
    g.cpus = list(range(cpus))
    g._hz = 100
    return g


def test_threads_follow_the_free_cores(monkeypatch):
    calls = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    fake = Fake()
    g = governor(fake)
    fake.advance(1.0, others=0.0, ours=2.0)
    assert g.update() == 2 and calls == []  # quiet: every core
    fake.advance(1.0, others=0.7, ours=1.3)  # a neighbour gets 0.7 of a core beside us
    assert g.update() == 1 and calls == [1]
    fake.advance(0.2, others=0.0, ours=1.0)
    assert g.update() == 1  # window too short: not measured again
    fake.advance(1.0, others=0.1, ours=1.0)  # the neighbour is gone
    assert g.update() == 2 and calls == [1, 2]
    fake.advance(1.0, others=2.0, ours=0.0)  # both cores busy: still one thread, never zero
    assert g.update(force=True) == 1


def test_more_cores_leave_more_threads():
    fake = Fake()
    g = governor(fake, threads=4, cpus=4)
    assert [g.choose(o) for o in (0.0, 0.4, 1.0, 2.6, 3.9)] == [4, 4, 3, 1, 1]
    assert governor(fake, threads=2, cpus=4).choose(1.0) == 2  # --threads is the most


def test_fixed_when_switched_off(monkeypatch):
    monkeypatch.setenv(threads.ADAPT_ENV, "0")
    fake = Fake()
    g = ThreadGovernor(2, clock=lambda: fake.t, busy=lambda: fake.busy, own=lambda: fake.own)
    fake.advance(1.0, others=2.0, ours=0.0)
    assert not g.adapt and g.update(force=True) == 2
    assert not ThreadGovernor(1).adapt  # one thread: nothing to adapt


def test_real_counters_are_readable():
    cpus = threads._cpu_set()
    busy = threads._busy_ticks(cpus)
    assert busy is None or busy >= 0
    assert threads._own_ticks() >= 0
