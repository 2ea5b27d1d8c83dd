"""Audio out, for one Wyoming connection: each request's audio as events, in request order.

Every answer has exactly one `audio-start` (before its first chunk; none when it failed
before any audio), `audio-chunk`s of `samples_per_chunk` samples (the last one shorter), one
`audio-stop`, and `synthesize-stopped` after a stream.  A failure is `error` then
`audio-stop` (then `synthesize-stopped`), never silence: Home Assistant waits for
`audio-stop` and would otherwise hang.

The writes themselves (and the bound on audio the client leaves unread) are the connection's:
`write` raises SlowClient or ConnectionError, which end `run`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.tts import SynthesizeStopped

from ..contract import CHANNELS, SAMPLE_RATE, SAMPLE_WIDTH
from .speech import Speech

STREAM_STOPPED = object()  # queued after an ignored stream (--no-streaming)


class Sender:
    def __init__(self, write: Callable[[Event], Awaitable[None]], samples_per_chunk: int) -> None:
        self._write = write
        self._bytes_per_chunk = samples_per_chunk * SAMPLE_WIDTH * CHANNELS
        self._outbox: asyncio.Queue[Speech | object] = asyncio.Queue()
        self.open: set[Speech] = set()  # queued or being answered
        self.last_sent = time.monotonic()

    @property
    def pending(self) -> int:
        """Answers queued and not begun."""
        return self._outbox.qsize()

    def answer(self, speech: Speech) -> None:
        self.open.add(speech)
        self._outbox.put_nowait(speech)

    def stream_stopped(self) -> None:
        """Say `synthesize-stopped` (in turn) for a stream that was not spoken."""
        self._outbox.put_nowait(STREAM_STOPPED)

    def abandon(self) -> list[Speech]:
        """The client is gone: cancel everything; returns the requests not finished."""
        unfinished = [speech for speech in self.open if not speech.finished]
        for speech in list(self.open):
            speech.cancel()
            speech.done()
        self.open.clear()
        while not self._outbox.empty():  # requests never reached
            item = self._outbox.get_nowait()
            if isinstance(item, Speech):
                item.done()
        return unfinished

    async def run(self) -> None:
        """Answer queued requests in order, for ever (cancel the task to stop)."""
        while True:
            item = await self._outbox.get()
            if not isinstance(item, Speech):
                await self._write(SynthesizeStopped().event())
                continue
            try:
                await self._send(item)
            finally:
                item.done()
                self.open.discard(item)
                self.last_sent = time.monotonic()

    async def _send(self, speech: Speech) -> None:
        pending = b""
        sent = 0  # samples
        first_audio: float | None = None

        async def chunk(pcm: bytes) -> None:
            nonlocal sent, first_audio
            if first_audio is None:
                first_audio = time.monotonic()
                await self._write(AudioStart(rate=SAMPLE_RATE, width=SAMPLE_WIDTH,
                                             channels=CHANNELS, timestamp=0).event())
            await self._write(AudioChunk(rate=SAMPLE_RATE, width=SAMPLE_WIDTH, channels=CHANNELS,
                                         audio=pcm, timestamp=sent * 1000 // SAMPLE_RATE).event())
            sent += len(pcm) // (SAMPLE_WIDTH * CHANNELS)

        size = self._bytes_per_chunk
        async for pcm in speech.audio():
            pending += pcm
            while len(pending) >= size:
                await chunk(pending[:size])
                pending = pending[size:]
        if pending:
            await chunk(pending)
        if speech.failure is not None:
            await self._write(Error(text=speech.failure.text, code=speech.failure.code).event())
        await self._write(AudioStop(timestamp=sent * 1000 // SAMPLE_RATE).event())
        if speech.streaming:
            await self._write(SynthesizeStopped().event())
        speech.log(sent, first_audio, "Stream" if speech.streaming else "Synthesize")
