"""The real server as a subprocess, and the Wyoming client steps every test repeats.

Shared by the tests, the soak test and the benchmarks:

- `free_port()`: a free TCP port on loopback;
- `ServerProcess`: `python -m wyoming_qwen3_tts` on a free port, its log lines collected as
  they come (`wait_for_log`, `mark`), its memory sampled (`rss`), stopped with SIGTERM;
- `servers()`: a context manager that stops every server started in it;
- `connect`, `read_until`, `check_audio`, `synthesize`: one client request end to end.

`mark()` is a barrier, not a guess: it makes the server log a line of its own (an event of an
unknown type, which a server started with --debug logs as ignored) and waits for it, so every
line the server wrote before is in `lines` and a later `wait_for_log(after=mark)` sees only
what came after.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

from wyoming.audio import AudioChunk, AudioStart
from wyoming.client import AsyncTcpClient
from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.tts import Synthesize, SynthesizeVoice

from ..contract import CHANNELS, SAMPLE_RATE, SAMPLE_WIDTH

HOST = "127.0.0.1"
EVENT_TIMEOUT = 120.0  # nothing a test waits for should take this long, on any machine
_MARKS = itertools.count()


def free_port(host: str = HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class ServerProcess:
    """`python -m wyoming_qwen3_tts ARGS` on a free TCP port of `host`."""

    def __init__(self, *args: str, host: str = HOST, env: dict | None = None,
                 on_line: Callable[[str], None] | None = None, keep_lines: bool = True,
                 preexec_fn: Callable[[], None] | None = None) -> None:
        self.host = HOST if host in ("0.0.0.0", "::") else host
        self.port = free_port()
        self.command = [sys.executable, "-u", "-m", "wyoming_qwen3_tts",
                        "--uri", f"tcp://{host}:{self.port}", *args]
        full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", **(env or {})}
        self.lines: list[str] = []
        self._keep_lines = keep_lines  # a long soak keeps only what on_line takes
        self._on_line = on_line
        self._changed = threading.Condition()
        self.process = subprocess.Popen(self.command, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True, env=full_env,
                                        preexec_fn=preexec_fn)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for raw in self.process.stderr:
            line = raw.rstrip("\n")
            if self._on_line is not None:
                self._on_line(line)
            with self._changed:
                if self._keep_lines or "sync-mark-" in line:
                    self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def log(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait_for_log(self, pattern: str, timeout: float = EVENT_TIMEOUT,
                     after: int = 0) -> re.Match:
        """The first line from position `after` on matching `pattern` (waits for it)."""
        return self.wait_for_lines(pattern, 1, timeout, after)[0]

    def wait_for_lines(self, pattern: str, count: int, timeout: float = EVENT_TIMEOUT,
                       after: int = 0) -> list[re.Match]:
        """The first `count` lines from position `after` on matching `pattern` (waits)."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [m for line in self.lines[after:] if (m := regex.search(line))]
                if len(found) >= count:
                    return found[:count]
                if self.process.poll() is not None and not self._reader.is_alive():
                    raise AssertionError(f"server exited ({self.process.returncode}) before "
                                         f"logging {pattern!r}:\n{self.log[-8000:]}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{len(found)} of {count} log lines matching "
                                         f"{pattern!r} within {timeout} s:\n{self.log[-8000:]}")
                self._changed.wait(min(left, 0.5))

    def mark(self) -> int:
        """A position in the log after everything the server has written so far."""
        name = f"sync-mark-{os.getpid()}-{next(_MARKS)}"
        deadline = time.monotonic() + EVENT_TIMEOUT
        while True:
            with socket.create_connection((self.host, self.port), timeout=EVENT_TIMEOUT) as sock:
                sock.sendall(encode_event(name))
                sock.shutdown(socket.SHUT_WR)
                answer = b""
                while chunk := sock.recv(65536):  # nothing, then the close
                    answer += chunk
            # refused (a previous test's connections not yet released): that event was
            # never read, so try again
            if b"too-many-connections" not in answer or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.wait_for_log(re.escape(name))
        with self._changed:
            return len(self.lines)

    def rss(self) -> int:
        """The server's resident memory in bytes (0 if it is gone)."""
        import psutil

        try:
            return int(psutil.Process(self.process.pid).memory_info().rss)
        except psutil.Error:
            return 0

    def peak_rss(self) -> int:
        """The most resident memory the server has had so far, in bytes (Linux: VmHWM)."""
        try:
            with open(f"/proc/{self.process.pid}/status", encoding="ascii") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, then its exit status; None if it had to be killed."""
        code: int | None = None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                code = self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        else:
            code = self.process.returncode
        self._reader.join(5)
        return code


def encode_event(kind: str, data: dict | None = None, payload: bytes = b"") -> bytes:
    """One Wyoming event as bytes on the wire (for clients that write raw bytes)."""
    import json

    header: dict = {"type": kind}
    body = json.dumps(data).encode() if data else b""
    if body:
        header["data_length"] = len(body)
    if payload:
        header["payload_length"] = len(payload)
    return json.dumps(header).encode() + b"\n" + body + payload


async def read_raw_events(reader: asyncio.StreamReader, last: str | None = None,
                          timeout: float = EVENT_TIMEOUT) -> list[Event]:
    """Events read from a raw stream up to one of type `last` (None: until the server
    closes the connection); payloads are read and dropped."""
    import json

    events: list[Event] = []
    while True:
        line = await asyncio.wait_for(reader.readline(), timeout)
        if not line:
            assert last is None, f"closed after {[e.type for e in events]}"
            return events
        header = json.loads(line)
        data = header.get("data") or {}
        if header.get("data_length"):
            data.update(json.loads(await reader.readexactly(header["data_length"])))
        if header.get("payload_length"):
            await reader.readexactly(header["payload_length"])
        events.append(Event(type=header["type"], data=data))
        if header["type"] == last:
            return events


@contextlib.contextmanager
def servers() -> Iterator[Callable[..., ServerProcess]]:
    """Yields start(*args, **kwargs) -> ServerProcess; stops every server started on exit."""
    started: list[ServerProcess] = []

    def start(*args: str, **kwargs) -> ServerProcess:
        server = ServerProcess(*args, **kwargs)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


# -- one client request -------------------------------------------------------------------------
async def connect(port: int, host: str = HOST) -> AsyncTcpClient:
    client = AsyncTcpClient(host, port)
    await client.connect()
    return client


async def read_until(client: AsyncTcpClient, last: str, timeout: float = EVENT_TIMEOUT
                     ) -> list[Event]:
    """Events up to and including the first of type `last`."""
    events: list[Event] = []
    while True:
        event = await asyncio.wait_for(client.read_event(), timeout)
        assert event is not None, f"connection closed after {[e.type for e in events]}"
        events.append(event)
        if event.type == last:
            return events


def check_audio(events: list[Event], streaming: bool = False, samples_per_chunk: int = 1024
                ) -> bytes:
    """Assert one well-formed audio answer; return its PCM."""
    kinds = [e.type for e in events]
    assert kinds[0] == "audio-start", kinds
    end = kinds.index("audio-stop")
    assert kinds[1:end] == ["audio-chunk"] * (end - 1) and end > 1, kinds
    assert kinds[end + 1:] == (["synthesize-stopped"] if streaming else []), kinds
    start = AudioStart.from_event(events[0])
    assert (start.rate, start.width, start.channels) == (SAMPLE_RATE, SAMPLE_WIDTH, CHANNELS)
    chunks = [AudioChunk.from_event(e) for e in events[1:end]]
    for chunk in chunks:
        assert (chunk.rate, chunk.width, chunk.channels) == (SAMPLE_RATE, SAMPLE_WIDTH, CHANNELS)
    sizes = [len(c.audio) // SAMPLE_WIDTH for c in chunks]
    assert all(size == samples_per_chunk for size in sizes[:-1]), sizes
    assert 0 < sizes[-1] <= samples_per_chunk
    return b"".join(c.audio for c in chunks)


async def synthesize(port: int, text: str, voice: str | None = None,
                     timeout: float = EVENT_TIMEOUT, host: str = HOST) -> bytes:
    """One `synthesize` on a connection of its own; asserts a well-formed answer, returns
    its PCM."""
    client = await connect(port, host)
    try:
        event = Synthesize(text=text, voice=SynthesizeVoice(name=voice) if voice else None)
        await client.write_event(event.event())
        return check_audio(await read_until(client, "audio-stop", timeout))
    finally:
        await client.disconnect()


async def request_events(port: int, event: Event, last: str = "audio-stop",
                         timeout: float = EVENT_TIMEOUT, host: str = HOST) -> list[Event]:
    """Every event answering `event` (on a connection of its own) up to `last`."""
    client = await connect(port, host)
    try:
        await client.write_event(event)
        return await read_until(client, last, timeout)
    finally:
        await client.disconnect()


async def describe(port: int, timeout: float = 10.0, host: str = HOST) -> Info:
    """The server's `info` (on a connection of its own)."""
    return Info.from_event((await request_events(port, Describe().event(), "info", timeout,
                                                 host))[-1])
