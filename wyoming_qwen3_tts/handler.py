"""One client connection: Wyoming events in, audio events out.

Reading and writing are split so the connection never stops listening: `handle_event` only
validates, segments text and queues sentences for the synthesis worker (it never waits for
audio), while a sender task writes each request's audio in order, as the worker produces it.
So `describe` and `ping` are answered at once, also mid-synthesis; a client that hangs up is
noticed at once and its queued and running sentences are cancelled; and several requests and
streams on one connection are answered in order, each with exactly one audio-start (before its
first chunk) and one audio-stop, plus synthesize-stopped for a stream.  Every failure ends the
request with `error` then `audio-stop` (and `synthesize-stopped`), never with silence.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass

from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
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

from .catalog import Catalog
from .languages import AUTO, to_model_language
from .segmentation import Segmenter, split_text
from .synthesis import Channel, Job, SegmentResult, Synthesizer, Ticket

_LOGGER = logging.getLogger(__name__)

RATE, WIDTH, CHANNELS = 24000, 2, 1

# The library reads whatever lengths a client announces; we bound them.  No TTS request
# carries a payload and its JSON is text of at most --max-text-chars.  (The header line is
# bounded by the stream reader's 64 KiB limit.)
MAX_DATA_BYTES = 1024 * 1024
MAX_PAYLOAD_BYTES = 4 * 1024 * 1024


@dataclass
class Settings:
    samples_per_chunk: int = 1024
    streaming: bool = True
    max_text_chars: int = 2000
    language: str | None = None  # --language as a model name; None: detect per sentence


@dataclass
class Service:
    """What all connections share."""

    settings: Settings
    catalog: Catalog
    synthesizer: Synthesizer


class ProtocolError(Exception):
    """The client sent something that is not a Wyoming event within our bounds."""


async def read_event(reader: asyncio.StreamReader) -> Event | None:
    """Like wyoming.event.async_read_event, but refuses oversized or malformed events."""
    try:
        line = await reader.readline()
    except ValueError as err:  # longer than the reader's limit
        raise ProtocolError("event header line too long") from err
    if not line:
        return None
    try:
        header = json.loads(line)
    except ValueError as err:
        raise ProtocolError("event header is not JSON") from err
    if not isinstance(header, dict) or not isinstance(header.get("type"), str):
        raise ProtocolError("event header has no type")
    data = header.get("data") or {}
    if not isinstance(data, dict):
        raise ProtocolError("event data is not an object")
    data_length = header.get("data_length") or 0
    payload_length = header.get("payload_length") or 0
    if not isinstance(data_length, int) or not 0 <= data_length <= MAX_DATA_BYTES:
        raise ProtocolError(f"data_length must be 0..{MAX_DATA_BYTES}")
    if not isinstance(payload_length, int) or not 0 <= payload_length <= MAX_PAYLOAD_BYTES:
        raise ProtocolError(f"payload_length must be 0..{MAX_PAYLOAD_BYTES}")
    try:
        if data_length:
            extra = json.loads(await reader.readexactly(data_length))
            if not isinstance(extra, dict):
                raise ProtocolError("event data is not an object")
            data.update(extra)
        payload = await reader.readexactly(payload_length) if payload_length else None
    except asyncio.IncompleteReadError:
        return None
    except ValueError as err:
        raise ProtocolError("event data is not JSON") from err
    return Event(type=header["type"], data=data, payload=payload)


@dataclass
class Failure:
    code: str
    text: str


class Request:
    """One `synthesize`, or one stream from synthesize-start to synthesize-stop."""

    def __init__(self, streaming: bool, speaker: str | None, language: str | None) -> None:
        self.streaming = streaming
        self.speaker = speaker
        self.language = language
        self.ticket = Ticket()
        self.parts: asyncio.Queue[Job | Failure | None] = asyncio.Queue()
        self.chars = 0
        self.segments = 0
        self.received = time.monotonic()
        self.first_submitted: float | None = None
        self.closed = False  # nothing more will be queued
        self.finished = False  # the sender has written audio-stop

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
        self._outbox: asyncio.Queue = asyncio.Queue()  # Requests and _STOPPED, in order
        self._open: set[Request] = set()
        self._stream: Request | None = None
        self._segmenter: Segmenter | None = None
        self._ignored_stream = False
        self._sender: asyncio.Task | None = None

    # -- reading ---------------------------------------------------------------------------
    async def run(self) -> None:
        """Receive events until the client leaves (bounded reads, see read_event)."""
        self._is_running = True
        try:
            while self._is_running:
                try:
                    event = await read_event(self.reader)
                except ProtocolError as err:
                    _LOGGER.warning("Closing a connection: %s", err)
                    await self.write_event(Error(text=str(err), code="bad-event").event())
                    break
                if event is None or not await self.handle_event(event):
                    break
        except (ConnectionError, OSError) as err:
            _LOGGER.debug("Connection lost: %s", err)
        finally:
            await self.disconnect()
            self.writer.close()

    async def disconnect(self) -> None:
        for request in self._open:
            request.ticket.cancel.set()
        cancelled = [r for r in self._open if not r.finished]
        if cancelled:
            _LOGGER.info("Client disconnected: cancelled %d unfinished request(s)", len(cancelled))
        if self._sender is not None:
            self._sender.cancel()

    async def handle_event(self, event: Event) -> bool:
        kind = event.type
        if Describe.is_type(kind):
            await self.write_event(self.service.catalog.info().event())
        elif Ping.is_type(kind):
            await self.write_event(Pong(text=event.data.get("text")).event())
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
        speaker = None
        failure = None
        if name or speaker_field:
            if catalog.known:
                speaker = catalog.find_speaker(name) or catalog.find_speaker(speaker_field)
                if speaker is None:
                    failure = Failure("unknown-voice", f"unknown voice {name or speaker_field!r}; "
                                      f"voices: {', '.join(catalog.speakers) or 'none'}")
            else:
                speaker = name or speaker_field  # the engine checks it once loaded
        language = settings.language
        if language_field:
            language = to_model_language(language_field)
            if language is None or (language != AUTO and catalog.languages
                                    and language not in catalog.languages):
                failure = failure or Failure(
                    "unsupported-language", f"language {language_field!r} is not one of "
                    f"{', '.join(catalog.languages) or 'the model languages'}")
        request = Request(streaming, speaker, language)
        self._open.add(request)
        self._outbox.put_nowait(request)
        if self._sender is None:
            self._sender = asyncio.create_task(self._send_all(), name="wyoming audio sender")
        if failure is not None:
            request.fail(failure.code, failure.text)
        return request

    def _submit(self, request: Request, text: str) -> None:
        channel = Channel(asyncio.get_running_loop())
        job = Job(text, request.speaker, request.language, request.ticket, channel)
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
                failure = Failure("cancelled", "synthesis was cancelled (client not reading)"
                                  if request.ticket.stalled else "synthesis was cancelled")
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
        speakers = ",".join(dict.fromkeys(str(r.speaker) for r in results))
        _LOGGER.info(
            "%s: %d chars, %d segment(s), voice=%s, language=%s, first audio %s, total %.2f s, "
            "%.2f s of audio, RTF %s",
            "Stream" if request.streaming else "Synthesize", request.chars, len(results),
            speakers, languages,
            f"{first_audio - begin:.2f} s" if first_audio is not None else "-",
            now - begin, audio_seconds,
            f"{engine_seconds / audio_seconds:.2f}" if audio_seconds else "-",
        )
        _LOGGER.debug("Request audio: %d chars, frames=%d samples=%d sha256=%s", request.chars,
                      sum(r.frames for r in results), samples,
                      request.ticket.digest.hexdigest())
