"""One client connection: Wyoming events in, audio events out.

Reading and writing are split so the connection never stops listening: `handle_event` only
validates, segments text and queues sentences for the synthesis worker (it never waits for
audio), while a sender task writes each request's audio in order, as the worker produces it.
So `describe` and `ping` are answered at once, also mid-synthesis; a client that hangs up is
noticed at once and its queued and running sentences are cancelled; and several requests and
streams on one connection are answered in order, each with exactly one audio-start (before its
first chunk) and one audio-stop, plus synthesize-stopped for a stream.  Every failure ends the
request with `error` then `audio-stop` (and `synthesize-stopped`), never with silence.

Nothing a client does can hold more than bounded resources (see README, "Limits"):

- events are read by the bounded reader of protocol.py; a malformed or oversized one gets an
  `error` (code `bad-event`) and closes that connection only;
- at most `max_connections` connections are served; one more gets an `error`
  (`too-many-connections`) and is closed;
- a connection that completes no event for `idle_timeout` seconds while nothing is being
  answered on it is closed;
- at most `max_queue` requests are in the server at once (being spoken or waiting, all
  connections together); one more is answered `error` (`queue-full`), `audio-stop` (and
  `synthesize-stopped`), and one connection may have at most MAX_PENDING_PER_CONNECTION
  answers outstanding;
- writes never wait for a client: the transport buffers up to `max_unread_seconds` of audio;
  past that a write waits at most WRITE_GRACE_SECONDS for the client to read, then the
  connection's requests are cancelled and it is closed.  The synthesis worker never waits for
  a client either (synthesis.Channel).

Voice names from clients are only looked up in the catalog; nothing a client sends becomes a
path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from dataclasses import dataclass

from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event, async_write_event
from wyoming.info import Describe
from wyoming.ping import Ping, Pong
from wyoming.server import AsyncEventHandler
from wyoming.tts import (
    Synthesize,
    SynthesizeChunk,
    SynthesizeStart,
    SynthesizeStop,
    SynthesizeStopped,
)

from ..contract import AUTO, BYTES_PER_SECOND, CHANNELS, SAMPLE_RATE, SAMPLE_WIDTH
from .catalog import Catalog
from .languages import to_model_language
from .protocol import EventReader, ProtocolError
from .segmentation import Segmenter, split_text
from .worker import Channel, Job, SegmentResult, Synthesizer, Ticket

_LOGGER = logging.getLogger(__name__)

RATE, WIDTH = SAMPLE_RATE, SAMPLE_WIDTH
WRITE_GRACE_SECONDS = 5.0  # a write past the unread-audio bound waits this long for the client
MAX_PENDING_PER_CONNECTION = 32  # answers (requests, stream stops) outstanding on a connection
SEND_BUFFER_BYTES = 128 * 1024  # kernel send buffer per TCP connection (Linux doubles it)
LINGER_SECONDS = 1.0  # after a closing error: how long incoming bytes are read and dropped
LINGER_BYTES = 1024 * 1024


@dataclass
class Settings:
    samples_per_chunk: int = 1024
    streaming: bool = True
    max_text_chars: int = 2000
    language: str | None = None  # --language as a model name; None: detect per sentence
    max_connections: int = 16
    idle_timeout: float = 300.0  # seconds; 0: never
    max_queue: int = 8  # requests in the server at once (spoken or waiting)
    max_unread_seconds: float = 30.0  # audio a client may leave unread before it is dropped


@dataclass
class Service:
    """What all connections share."""

    settings: Settings
    catalog: Catalog
    synthesizer: Synthesizer
    connections: int = 0  # connections being served
    requests: int = 0  # requests accepted and not finished, all connections together
    stopping: bool = False  # shutting down: refuse new connections


class SlowClient(ConnectionError):
    """The client left more audio unread than allowed."""


@dataclass
class Failure:
    code: str
    text: str


class Request:
    """One `synthesize`, or one stream from synthesize-start to synthesize-stop."""

    def __init__(self, streaming: bool, voice: str | None, language: str | None) -> None:
        self.streaming = streaming
        self.voice = voice
        self.language = language
        self.ticket = Ticket()
        self.parts: asyncio.Queue[Job | Failure | None] = asyncio.Queue()
        self.chars = 0
        self.segments = 0
        self.received = time.monotonic()
        self.first_submitted: float | None = None
        self.closed = False  # nothing more will be queued
        self.finished = False  # the sender has written audio-stop
        self.counted = False  # holds a place in Service.requests

    def fail(self, code: str, text: str) -> None:
        if not self.closed:
            self.parts.put_nowait(Failure(code, text))
            self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.parts.put_nowait(None)


_STOPPED = object()  # queued after an ignored stream (--no-streaming): say synthesize-stopped


class Qwen3TtsEventHandler(AsyncEventHandler):
    def __init__(self, service: Service, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.service = service
        self._events = EventReader(self.reader)
        self._unread_limit = max(WIDTH, int(service.settings.max_unread_seconds
                                            * BYTES_PER_SECOND))
        self._last_activity = time.monotonic()  # last complete event in or event out
        self._eof_written = False
        self._outbox: asyncio.Queue = asyncio.Queue()  # Requests and _STOPPED, in order
        self._open: set[Request] = set()
        self._stream: Request | None = None
        self._segmenter: Segmenter | None = None
        self._ignored_stream = False
        self._sender: asyncio.Task | None = None

    # -- reading ---------------------------------------------------------------------------
    async def run(self) -> None:
        """Receive events until the client leaves (bounded reads: protocol.EventReader)."""
        service, settings = self.service, self.service.settings
        if service.stopping or service.connections >= settings.max_connections:
            await self._refuse()
            return
        service.connections += 1
        self._is_running = True
        self._configure_transport()
        watchdog = (asyncio.create_task(self._watch_idle(), name="wyoming idle watchdog")
                    if settings.idle_timeout > 0 else None)
        try:
            while self._is_running:
                try:
                    event = await self._events.read_event()
                except ProtocolError as err:
                    _LOGGER.warning("Closing a connection: %s", err)
                    self._stop_answering()
                    await self.write_event(Error(text=str(err), code="bad-event").event())
                    await self._close_gently()
                    break
                if event is None:
                    break
                self._last_activity = time.monotonic()
                if not await self.handle_event(event):
                    break
        except SlowClient as err:
            self._drop(err)
        except (ConnectionError, OSError) as err:
            _LOGGER.debug("Connection lost: %s", err)
        finally:
            service.connections -= 1
            if watchdog is not None:
                watchdog.cancel()
            await self.disconnect()
            self.writer.close()

    def _configure_transport(self) -> None:
        """Writes do not wait until `max_unread_seconds` of audio are buffered; the kernel's
        own send buffer is kept moderate so that bound means something."""
        transport = self.writer.transport
        with contextlib.suppress(AttributeError, NotImplementedError):
            transport.set_write_buffer_limits(high=self._unread_limit)
        sock = self.writer.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)

    async def _refuse(self) -> None:
        """Too many connections (or shutting down): say so and close."""
        stopping = self.service.stopping
        if not stopping:
            _LOGGER.warning("Refusing a connection: %d connections already (--max-connections)",
                            self.service.connections)
        error = (Error(text="the server is shutting down", code="shutting-down") if stopping
                 else Error(text=f"too many connections (limit: "
                                 f"{self.service.settings.max_connections}); try again later",
                            code="too-many-connections"))
        try:
            await self.write_event(error.event())
            await self._close_gently()
        except (ConnectionError, OSError):
            pass
        finally:
            self.writer.close()

    async def _close_gently(self) -> None:
        """Half-close, then read and drop what the client still sends for a moment: closing a
        socket with unread input resets it, and the client could miss our last event."""
        self._eof_written = True
        with contextlib.suppress(Exception):
            if self.writer.can_write_eof():
                self.writer.write_eof()
            loop = asyncio.get_running_loop()
            deadline = loop.time() + LINGER_SECONDS
            dropped = 0
            while dropped < LINGER_BYTES and (left := deadline - loop.time()) > 0:
                chunk = await asyncio.wait_for(self.reader.read(64 * 1024), left)
                if not chunk:
                    break
                dropped += len(chunk)

    async def _watch_idle(self) -> None:
        """Close the connection after `idle_timeout` seconds without a complete event, unless
        requests of it are still being answered."""
        timeout = self.service.settings.idle_timeout
        while self._is_running:
            now = time.monotonic()
            if any(request.closed for request in self._open):
                self._last_activity = now  # audio is owed (an open stream waits for the client)
            idle = now - self._last_activity
            if idle >= timeout:
                _LOGGER.info("Closing a connection idle for %.0f s (--idle-timeout)", idle)
                await self.stop()
                return
            await asyncio.sleep(max(0.05, min(timeout - idle, 1.0)))

    def _cancel_all(self) -> None:
        for request in self._open:
            request.ticket.cancel.set()

    def _stop_answering(self) -> None:
        """Before a closing error: nothing more is generated or sent on this connection."""
        self._cancel_all()
        if self._sender is not None:
            self._sender.cancel()

    def _drop(self, err: BaseException) -> None:
        """The client does not read: cancel its requests and close at once, dropping the
        buffered audio."""
        _LOGGER.warning("Dropping a client: %s", err)
        self._cancel_all()
        self._is_running = False
        self.writer.transport.abort()

    def _release(self, request: Request) -> None:
        if request.counted:
            request.counted = False
            self.service.requests -= 1

    async def write_event(self, event: Event) -> None:
        """Write without waiting for the client, up to `max_unread_seconds` of audio buffered;
        past that, wait at most WRITE_GRACE_SECONDS for it to read (else SlowClient)."""
        if self.writer.is_closing() or self._eof_written:
            raise ConnectionResetError("connection closed")
        self._last_activity = time.monotonic()
        try:
            await asyncio.wait_for(async_write_event(event, self.writer), WRITE_GRACE_SECONDS)
        except asyncio.TimeoutError:
            raise SlowClient(f"more than {self._unread_limit / BYTES_PER_SECOND:g} s of "
                             f"audio left unread for {WRITE_GRACE_SECONDS:g} s") from None

    async def disconnect(self) -> None:
        self._cancel_all()
        cancelled = [r for r in self._open if not r.finished]
        if cancelled:
            _LOGGER.info("Client disconnected: cancelled %d unfinished request(s)", len(cancelled))
        for request in list(self._open):
            self._release(request)
        while not self._outbox.empty():  # requests the sender never reached
            item = self._outbox.get_nowait()
            if isinstance(item, Request):
                self._release(item)
        if self._sender is not None:
            self._sender.cancel()

    async def handle_event(self, event: Event) -> bool:
        kind = event.type
        if Describe.is_type(kind):
            await self.write_event(self.service.catalog.info().event())
        elif Ping.is_type(kind):
            await self.write_event(Pong(text=event.data.get("text")).event())
        elif ((Synthesize.is_type(kind) and self._stream is None)
              or SynthesizeStart.is_type(kind) or SynthesizeStop.is_type(kind)) \
                and self._outbox.qsize() >= MAX_PENDING_PER_CONNECTION:
            _LOGGER.warning("Closing a connection with %d answers outstanding",
                            self._outbox.qsize())
            self._stop_answering()
            await self.write_event(Error(text=f"more than {MAX_PENDING_PER_CONNECTION} requests "
                                              "outstanding on one connection",
                                         code="too-many-requests").event())
            await self._close_gently()
            return False
        elif Synthesize.is_type(kind):
            if self._stream is not None:
                _LOGGER.debug("Ignoring the compatibility synthesize inside a stream")
            else:
                self._synthesize(event.data)
        elif SynthesizeStart.is_type(kind):
            self._start_stream(event.data)
        elif SynthesizeChunk.is_type(kind):
            self._stream_text(event.data.get("text"))
        elif SynthesizeStop.is_type(kind):
            self._stop_stream()
        else:
            _LOGGER.debug("Ignoring event %s", kind)
        return True

    # -- requests --------------------------------------------------------------------------
    def _new_request(self, data: dict, streaming: bool) -> Request:
        """A request with its voice and language resolved, or already failed."""
        voice = data.get("voice") if isinstance(data.get("voice"), dict) else {}
        # Raw data: wyoming's SynthesizeVoice.from_dict drops `language` when `name` is set.
        name, speaker_field, language_field = (
            value if isinstance(value, str) and value.strip() else None
            for value in (voice.get("name"), voice.get("speaker"), voice.get("language"))
        )
        catalog, settings = self.service.catalog, self.service.settings
        voice_name = None
        failure = None
        if name or speaker_field:
            if catalog.known:
                found = catalog.voice(name) or catalog.voice(speaker_field)
                voice_name = found.name if found is not None else None
                if found is None:
                    failure = Failure("unknown-voice",
                                      catalog.unknown_voice(name or speaker_field or ""))
            else:
                voice_name = name or speaker_field  # the router checks it once loaded
        language = settings.language
        if language_field:
            language = to_model_language(language_field)
            if language is None or (language != AUTO and catalog.languages
                                    and language not in catalog.languages):
                failure = failure or Failure(
                    "unsupported-language", f"language {language_field!r} is not one of "
                    f"{', '.join(catalog.languages) or 'the model languages'}")
        if failure is None and self.service.requests >= settings.max_queue:
            _LOGGER.warning("Queue full: %d requests in the server (--max-queue)",
                            self.service.requests)
            failure = Failure("queue-full", f"the server is busy: {self.service.requests} "
                              "requests are being spoken or waiting; try again later")
        request = Request(streaming, voice_name, language)
        if failure is None:
            request.counted = True
            self.service.requests += 1
        self._open.add(request)
        self._outbox.put_nowait(request)
        if self._sender is None:
            self._sender = asyncio.create_task(self._send_all(), name="wyoming audio sender")
        if failure is not None:
            request.fail(failure.code, failure.text)
        return request

    def _submit(self, request: Request, text: str) -> None:
        channel = Channel(asyncio.get_running_loop(), capacity=self._unread_limit)
        job = Job(text, request.voice, request.language, request.ticket, channel)
        if request.first_submitted is None:
            request.first_submitted = time.monotonic()
        request.segments += 1
        request.parts.put_nowait(job)
        self.service.synthesizer.submit(job)

    def _too_long(self, request: Request) -> bool:
        limit = self.service.settings.max_text_chars
        if request.chars > limit:
            request.fail("text-too-long",
                         f"text is {request.chars} characters; the limit is {limit}")
            return True
        return False

    def _synthesize(self, data: dict) -> None:
        request = self._new_request(data, streaming=False)
        text = data.get("text") if isinstance(data.get("text"), str) else ""
        request.chars = len(text)
        if request.closed or self._too_long(request):
            return
        segments = split_text(text)
        if not segments:
            request.fail("empty-text", "nothing to say: the text is empty or has no words")
            return
        for segment in segments:
            self._submit(request, segment)
        request.close()

    def _start_stream(self, data: dict) -> None:
        if self._stream is not None:
            _LOGGER.warning("synthesize-start inside a stream: ending the previous stream")
            self._stop_stream()
        if not self.service.settings.streaming:
            # Like wyoming-piper: streaming is off, so the compatibility `synthesize` inside
            # it is served; synthesize-stop is still answered so no client waits.
            self._ignored_stream = True
            return
        self._stream = self._new_request(data, streaming=True)
        self._segmenter = Segmenter()

    def _stream_text(self, text) -> None:
        request, segmenter = self._stream, self._segmenter
        if request is None or segmenter is None:
            if not self._ignored_stream:
                _LOGGER.debug("Ignoring synthesize-chunk outside a stream")
            return
        if request.closed or request.finished or not isinstance(text, str):
            return
        request.chars += len(text)
        if self._too_long(request):
            return
        for segment in segmenter.add(text):
            self._submit(request, segment)

    def _stop_stream(self) -> None:
        if self._ignored_stream:
            self._ignored_stream = False
            self._outbox.put_nowait(_STOPPED)
            if self._sender is None:
                self._sender = asyncio.create_task(self._send_all(), name="wyoming audio sender")
            return
        request, segmenter = self._stream, self._segmenter
        self._stream = self._segmenter = None
        if request is None or segmenter is None:
            _LOGGER.debug("Ignoring synthesize-stop outside a stream")
            return
        if request.closed or request.finished:
            return
        for segment in segmenter.finish():
            self._submit(request, segment)
        if request.segments == 0:
            request.fail("empty-text", "nothing to say: the stream had no words")
        request.close()

    # -- writing ---------------------------------------------------------------------------
    async def _send_all(self) -> None:
        try:
            while True:
                item = await self._outbox.get()
                if item is _STOPPED:
                    await self.write_event(SynthesizeStopped().event())
                    continue
                try:
                    await self._send(item)
                finally:
                    item.finished = True
                    self._open.discard(item)
                    self._release(item)
                    self._last_activity = time.monotonic()
        except SlowClient as err:
            self._drop(err)
        except (ConnectionError, OSError) as err:
            _LOGGER.debug("Could not send audio, client gone: %s", err)
            await self.stop()
        except asyncio.CancelledError:
            pass

    async def _send(self, request: Request) -> None:
        bytes_per_chunk = self.service.settings.samples_per_chunk * WIDTH * CHANNELS
        pending = b""
        sent_samples = 0
        started = False
        first_audio: float | None = None
        results: list[SegmentResult] = []
        failure: Failure | None = None

        async def send_pcm(pcm: bytes) -> None:
            nonlocal started, sent_samples, first_audio
            if not started:
                started = True
                await self.write_event(AudioStart(rate=RATE, width=WIDTH, channels=CHANNELS,
                                                  timestamp=0).event())
            if first_audio is None:
                first_audio = time.monotonic()
            await self.write_event(AudioChunk(rate=RATE, width=WIDTH, channels=CHANNELS,
                                              audio=pcm,
                                              timestamp=sent_samples * 1000 // RATE).event())
            sent_samples += len(pcm) // (WIDTH * CHANNELS)

        while failure is None:
            part = await request.parts.get()
            if part is None:
                break
            if isinstance(part, Failure):
                failure = part
                break
            while not isinstance(item := await part.channel.get(), SegmentResult):
                pending += item
                while len(pending) >= bytes_per_chunk:
                    await send_pcm(pending[:bytes_per_chunk])
                    pending = pending[bytes_per_chunk:]
            result = item
            results.append(result)
            if result.error_code:
                failure = Failure(result.error_code, result.error_text or result.error_code)
            elif result.cancelled:
                if request.ticket.stalled:  # the worker found the client's audio unread
                    raise SlowClient(f"more than {self._unread_limit / BYTES_PER_SECOND:g} s "
                                     "of audio left unread")
                failure = Failure("cancelled", "synthesis was cancelled")
        if pending:
            await send_pcm(pending)
        if failure is not None:
            request.ticket.cancel.set()  # skip its queued sentences
            request.close()
            _LOGGER.warning("Request failed (%s): %s", failure.code, failure.text)
            await self.write_event(Error(text=failure.text, code=failure.code).event())
        await self.write_event(AudioStop(timestamp=sent_samples * 1000 // RATE).event())
        if request.streaming:
            await self.write_event(SynthesizeStopped().event())
        if results and failure is None:
            self._log_request(request, results, sent_samples, first_audio)

    def _log_request(self, request: Request, results: list[SegmentResult], samples: int,
                     first_audio: float | None) -> None:
        begin = request.first_submitted or request.received
        now = time.monotonic()
        audio_seconds = samples / RATE
        engine_seconds = sum(r.seconds for r in results)
        languages = ",".join(dict.fromkeys(str(r.language) for r in results))
        voices = ",".join(dict.fromkeys(str(r.voice) for r in results))
        _LOGGER.info(
            "%s: %d chars, %d segment(s), voice=%s, language=%s, first audio %s, total %.2f s, "
            "%.2f s of audio, RTF %s",
            "Stream" if request.streaming else "Synthesize", request.chars, len(results),
            voices, languages,
            f"{first_audio - begin:.2f} s" if first_audio is not None else "-",
            now - begin, audio_seconds,
            f"{engine_seconds / audio_seconds:.2f}" if audio_seconds else "-",
        )
        _LOGGER.debug("Request audio: %d chars, frames=%d samples=%d sha256=%s", request.chars,
                      sum(r.frames for r in results), samples,
                      request.ticket.digest.hexdigest())
