"""Soak test: a real server under a mix of good and bad clients, on loopback, for a bounded time.

    python -m wyoming_qwen3_tts.dev.soak --requests 300 --concurrency 6 --seconds 600 [--model PATH]

Starts its own server (`python -m wyoming_qwen3_tts`, debug log) on a free port of 127.0.0.1
with the given checkpoint, or the tiny random test checkpoint (built into .cache/devmodels
when missing), then runs `--requests` clients, `--concurrency` at a time, until all are done
or `--seconds` have passed.  Each client is one connection of one kind:

- ok: `synthesize`, reads everything;            - stream: synthesize-start/chunk*/stop;
- slow: `synthesize`, reads in small sips with pauses (still well within real time);
- hangup: starts a request or stream and disconnects after its first audio;
- garbage: malformed or oversized events, binary noise, truncated events;
- stall: starts a request and reads nothing for a while, then leaves.

The first three are well-behaved: every one must receive all its audio.  The server logs the
sample count and SHA-256 of all the audio it produced for each request; a well-behaved
client's audio must match one such line exactly (same digest, same samples, whole frames of
1920 samples).  Printed at the end: requests completed by kind, audio bytes received versus
expected for the well-behaved ones (and how many lost any), errors by kind, the server's peak
and final RSS, and whether it stopped cleanly (SIGTERM, exit 0).  The exit status is 0 only
if no well-behaved request lost audio or failed and the server never crashed.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import hashlib
import itertools
import json
import os
import random
import re
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..contract import BYTES_PER_SECOND, SAMPLES_PER_FRAME
from .serverproc import HOST, ServerProcess

KINDS = {"ok": 40, "stream": 20, "slow": 10, "hangup": 10, "garbage": 12, "stall": 8}
WELL_BEHAVED = ("ok", "stream", "slow")
SOURCE_ADDRESSES = 8
_SOURCES = itertools.count()  # clients take the addresses in turn
SENTENCES = [  # short: the tiny model always runs to its frame cap, which grows with the text
    "Hello there.", "Lights on.", "It is warm.", "Good night!", "Door locked.",
    "Dinner time.", "Turn left.", "Nice to meet you.", "Rain tomorrow.", "Timer done.",
]
_AUDIO_LINE = re.compile(r"Request audio: (\d+) chars, frames=(\d+) samples=(\d+) sha256=(\w+)")


# -- the server ------------------------------------------------------------------------------
class SoakServer(ServerProcess):
    """The server subprocess (serverproc.ServerProcess, keeping no log of its own); collects
    the audio digests it logs, its warnings and its peak RSS."""

    def __init__(self, model: str, data_dir: Path, threads: int, extra: list[str]) -> None:
        self.ready = threading.Event()
        self.audio: dict[str, list[tuple[int, int]]] = collections.defaultdict(list)
        self.warnings: collections.Counter[str] = collections.Counter()
        self.tail: collections.deque[str] = collections.deque(maxlen=40)
        self._lock = threading.Lock()
        self.serving_peak = self.last_rss = 0  # sampled while serving (not loading)
        super().__init__("--model", model, "--data-dir", str(data_dir), "--threads", str(threads),
                         "--debug", *extra, on_line=self._take_line, keep_lines=False,
                         env={"HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")})

    def _take_line(self, line: str) -> None:
        self.tail.append(line)
        if "Ready: " in line:
            self.ready.set()
        if match := _AUDIO_LINE.search(line):
            with self._lock:
                self.audio[match[4]].append((int(match[3]), int(match[2])))
        elif " WARNING " in line or " ERROR " in line:
            message = line.split(": ", 1)[-1].strip()
            self.warnings[re.sub(r"\d+(\.\d+)?", "N", message)[:90]] += 1

    def take(self, digest: str) -> tuple[int, int] | None:
        """(samples, frames) the server logged for audio with this digest (used once)."""
        with self._lock:
            entries = self.audio.get(digest)
            return entries.pop() if entries else None

    def sample_rss(self) -> None:
        self.last_rss = self.rss() or self.last_rss
        self.serving_peak = max(self.serving_peak, self.last_rss)


# -- clients -------------------------------------------------------------------------------------
def _encode(kind: str, data: dict | None = None) -> bytes:
    header: dict = {"type": kind, "version": "1.0.0"}
    body = b""
    if data:
        body = json.dumps(data).encode()
        header["data_length"] = len(body)
    return json.dumps(header).encode() + b"\n" + body


async def _read_event(reader: asyncio.StreamReader, sip: int = 0, pause: float = 0.0):
    """(type, data, payload) or None at end; `sip`/`pause` read slowly."""

    async def exactly(size: int) -> bytes:
        if not sip:
            return await reader.readexactly(size)
        parts = []
        while size:
            part = await reader.readexactly(min(size, sip))
            parts.append(part)
            size -= len(part)
            await asyncio.sleep(pause)
        return b"".join(parts)

    line = await reader.readline()
    if not line:
        return None
    header = json.loads(line)
    data = header.get("data") or {}
    if header.get("data_length"):
        data.update(json.loads(await exactly(header["data_length"])))
    payload = await exactly(header["payload_length"]) if header.get("payload_length") else b""
    return header["type"], data, payload


@dataclass
class Outcome:
    kind: str
    completed: bool = False  # a well-behaved request that got audio-stop without error
    received: int = 0  # audio bytes
    expected: int | None = None  # audio bytes the server logged for it
    lost: bool = False
    digest: str = ""
    errors: list[str] = field(default_factory=list)


async def _receive(reader, outcome: Outcome, last: str, timeout: float, sip: int = 0,
                   pause: float = 0.0) -> bytes:
    pcm = bytearray()
    while True:
        event = await asyncio.wait_for(_read_event(reader, sip, pause), timeout)
        if event is None:
            outcome.errors.append("closed-before-end")
            return bytes(pcm)
        kind, data, payload = event
        if kind == "error":
            outcome.errors.append(f"error:{data.get('code')}")
        elif kind == "audio-chunk":
            pcm += payload
        if kind == last:
            return bytes(pcm)


def _text(rng: random.Random) -> str:
    return " ".join(rng.sample(SENTENCES, rng.choice((1, 1, 1, 2))))


async def _client(kind: str, rng: random.Random, port: int, timeout: float) -> Outcome:
    outcome = Outcome(kind)
    # clients come from several loopback addresses, as devices of a home network do (the
    # server limits what one address may hold)
    source = f"127.0.0.{2 + next(_SOURCES) % SOURCE_ADDRESSES}"
    reader, writer = await asyncio.open_connection(HOST, port, local_addr=(source, 0))
    try:
        text = _text(rng)
        if kind in ("ok", "slow"):
            writer.write(_encode("synthesize", {"text": text}))
            sip, pause = (2048, 0.01) if kind == "slow" else (0, 0.0)
            pcm = await _receive(reader, outcome, "audio-stop", timeout, sip, pause)
            outcome.completed = not outcome.errors
        elif kind == "stream":
            writer.write(_encode("synthesize-start", {}))
            for i in range(0, len(text), 7):
                writer.write(_encode("synthesize-chunk", {"text": text[i:i + 7]}))
                await writer.drain()
                await asyncio.sleep(rng.random() * 0.02)
            writer.write(_encode("synthesize-stop"))
            pcm = await _receive(reader, outcome, "synthesize-stopped", timeout)
            outcome.completed = not outcome.errors
        elif kind == "hangup":
            if rng.random() < 0.5:
                writer.write(_encode("synthesize", {"text": text}))
            else:
                writer.write(_encode("synthesize-start", {}) + _encode("synthesize-chunk",
                                                                       {"text": text}))
                writer.write(_encode("synthesize-stop"))
            await _receive(reader, outcome, "audio-chunk", timeout)
            return outcome
        elif kind == "stall":
            writer.write(_encode("synthesize", {"text": text}))
            await writer.drain()
            await asyncio.sleep(1.0 + rng.random() * 2.0)
            return outcome
        else:  # garbage
            writer.write(_garbage(rng))
            with _suppress_connection_errors():
                await writer.drain()
                while await asyncio.wait_for(reader.read(65536), timeout):
                    pass
            return outcome
        outcome.received = len(pcm)
        outcome.digest = hashlib.sha256(pcm).hexdigest()
        return outcome
    except asyncio.TimeoutError:
        outcome.errors.append("timeout")
        return outcome
    except (ConnectionError, OSError, ValueError, asyncio.IncompleteReadError) as err:
        outcome.errors.append(type(err).__name__)
        return outcome
    finally:
        writer.close()


class _suppress_connection_errors:
    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback) -> bool:
        return kind is not None and issubclass(kind, (ConnectionError, OSError))


def _garbage(rng: random.Random) -> bytes:
    choice = rng.randrange(8)
    if choice == 0:
        return rng.randbytes(rng.randrange(1, 4096))
    if choice == 1:
        return b'{"type": "synthesize", "data_length": 99999999999}\n'
    if choice == 2:
        return b'{"type": "audio-chunk", "payload_length": 1073741824}\n' + b"\0" * 1000
    if choice == 3:
        return b'{"type": "synthesize", "data": {"text": "' + b"a" * 70000  # no newline
    if choice == 4:
        return b'{"type": "synthesize", "data_length": 50}\n{"text": "cut'  # truncated
    if choice == 5:
        return b"[" * 30000 + b"\n"
    if choice == 6:
        return _encode("synthesize", {"text": "Hi."})[:-5] + b"\xff\xfe\n"
    return b'{"type": "synthesize", "payload_length": -1}\n'


# -- the run -----------------------------------------------------------------------------------
@dataclass
class Report:
    launched: int = 0
    by_kind: collections.Counter = field(default_factory=collections.Counter)
    completed: collections.Counter = field(default_factory=collections.Counter)
    errors: collections.Counter = field(default_factory=collections.Counter)
    received_bytes: int = 0
    expected_bytes: int = 0
    lost: int = 0  # well-behaved requests whose audio does not match the server's
    failed: int = 0  # well-behaved requests that did not complete
    peak_rss: int = 0
    final_rss: int = 0
    crashed: bool = False
    exit_code: int | None = None
    seconds: float = 0.0
    server_warnings: collections.Counter = field(default_factory=collections.Counter)

    @property
    def ok(self) -> bool:
        return (not self.crashed and self.exit_code == 0 and self.lost == 0
                and self.failed == 0)

    def lines(self) -> list[str]:
        good = sum(self.by_kind[k] for k in WELL_BEHAVED)
        out = [
            f"clients: {self.launched} in {self.seconds:.1f} s; by kind: "
            + ", ".join(f"{k} {self.by_kind[k]}" for k in KINDS),
            f"well-behaved requests completed: {sum(self.completed.values())} of {good} ("
            + ", ".join(f"{k} {self.completed[k]}" for k in WELL_BEHAVED) + ")",
            f"audio received {self.received_bytes} bytes, expected {self.expected_bytes} bytes "
            f"({self.received_bytes / BYTES_PER_SECOND:.1f} s); requests with lost or "
            f"unmatched audio: "
            f"{self.lost}; failed: {self.failed}",
            "client-side errors by kind: " + (", ".join(
                f"{k} {v}" for k, v in sorted(self.errors.items())) or "none"),
            f"server RSS: peak {self.peak_rss / 2**20:.0f} MiB, final "
            f"{self.final_rss / 2**20:.0f} MiB",
            f"server: {'CRASHED' if self.crashed else 'alive to the end'}, exit code after "
            f"SIGTERM: {self.exit_code}",
        ]
        if self.server_warnings:
            out.append("server warnings: " + "; ".join(
                f"{v}x {k}" for k, v in self.server_warnings.most_common(8)))
        out.append("RESULT: " + ("PASS" if self.ok else "FAIL"))
        return out


async def _run_clients(server: SoakServer, requests: int, concurrency: int, seconds: float,
                       seed: int, timeout: float, report: Report) -> list[Outcome]:
    rng = random.Random(seed)
    kinds = [k for k, weight in KINDS.items() for _ in range(weight)]
    plan = [rng.choice(kinds) for _ in range(requests)]
    deadline = time.monotonic() + seconds
    outcomes: list[Outcome] = []
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        while next_index < len(plan) and time.monotonic() < deadline and server.alive():
            kind = plan[next_index]
            client_rng = random.Random(rng.random())
            next_index += 1
            report.launched += 1
            report.by_kind[kind] += 1
            left = max(1.0, deadline - time.monotonic())
            try:
                outcomes.append(await asyncio.wait_for(
                    _client(kind, client_rng, server.port, min(timeout, left)), left + 5))
            except (asyncio.TimeoutError, OSError) as err:
                outcomes.append(Outcome(kind, errors=[type(err).__name__]))

    async def sample_rss() -> None:
        while True:
            server.sample_rss()
            await asyncio.sleep(0.25)

    sampler = asyncio.create_task(sample_rss())
    try:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        sampler.cancel()
    return outcomes


def run_soak(requests: int = 300, concurrency: int = 6, seconds: float = 600.0,
             model: str | None = None, threads: int = 1, seed: int = 0,
             timeout: float = 120.0, server_args: list[str] | None = None,
             out=None) -> Report:
    """Run one soak and return its report (printed to `out` as it finishes)."""
    out = out or sys.stdout
    from .checkpoints import cached_checkpoint

    model = model or str(cached_checkpoint())
    report = Report()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="soak-") as data_dir:
        server = SoakServer(model, Path(data_dir), threads, ["--no-warmup", *(server_args or [])])
        try:
            while not server.ready.wait(0.5):
                if not server.alive():
                    raise RuntimeError("the server exited before it was ready:\n"
                                       + "\n".join(server.tail))
                if time.monotonic() - started > 900:
                    raise RuntimeError("the server did not load its model within 15 min")
            print(f"server ready on {HOST}:{server.port} ({model}); running up to {requests} "
                  f"clients, {concurrency} at a time, for at most {seconds:g} s", file=out)
            started = time.monotonic()
            outcomes = asyncio.run(_run_clients(server, requests, concurrency, seconds, seed,
                                                timeout, report))
            report.seconds = time.monotonic() - started
            report.crashed = not server.alive()
            time.sleep(0.5)  # the last log lines
            server.sample_rss()
            report.final_rss, report.peak_rss = server.last_rss, server.serving_peak
            for outcome in outcomes:
                for error in outcome.errors:
                    report.errors[f"{outcome.kind}:{error}"] += 1
                if outcome.kind not in WELL_BEHAVED:
                    continue
                if not outcome.completed:
                    report.failed += 1
                    continue
                report.completed[outcome.kind] += 1
                report.received_bytes += outcome.received
                logged = server.take(outcome.digest)
                if logged is None:
                    report.lost += 1
                    continue
                samples, frames = logged
                report.expected_bytes += samples * 2
                if samples * 2 != outcome.received or samples != frames * SAMPLES_PER_FRAME:
                    report.lost += 1
        finally:
            report.exit_code = server.stop()
            report.crashed = report.crashed or report.exit_code is None
            report.server_warnings = server.warnings
    for line in report.lines():
        print(line, file=out)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wyoming_qwen3_tts.dev.soak",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="clients to run in all")
    parser.add_argument("--concurrency", type=int, default=6, help="clients at a time")
    parser.add_argument("--seconds", type=float, default=600.0,
                        help="stop launching clients after this long")
    parser.add_argument("--model", help="checkpoint folder or repo id (default: the tiny "
                                        "random test checkpoint)")
    parser.add_argument("--threads", type=int, default=1, help="server torch threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="longest wait for one event")
    parser.add_argument("server_args", nargs="*",
                        help="more server options, after --, e.g. -- --max-queue 4")
    args = parser.parse_args(argv)
    report = run_soak(args.requests, args.concurrency, args.seconds, args.model, args.threads,
                      args.seed, args.timeout, args.server_args)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
