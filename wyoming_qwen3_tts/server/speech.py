"""One request to speak, whichever front door it came through (Wyoming now, HTTP beside it).

A `Speech` is one Wyoming `synthesize`, one Wyoming stream (synthesize-start to -stop), or one
HTTP speech request.  It resolves the voice and language against the catalog, takes a place
in the queue (admission.py), cuts its text into segments (segmentation.py), hands them to the
synthesis worker in its client's lane (worker.py), and gives the front door its audio in order
(`audio()`): PCM as the worker produces it, then how it ended.  Every failure is a `Failure`
(code and text for the client); a request that failed before any audio has nothing to play.

The front door owns the transport: it decides how audio is framed (Wyoming events, an HTTP
body), applies its own bound on unread audio (`capacity`), and calls `done()` when the
request has been answered, which gives its queue place back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from ..contract import AUTO, BYTES_PER_SECOND, SAMPLE_RATE, SAMPLE_WIDTH
from .admission import Admission
from .catalog import Catalog
from .languages import to_model_language
from .segmentation import Segmenter, split_text
from .untrusted import clean, clip
from .worker import Channel, Job, Lane, SegmentResult, Synthesizer, Ticket

_LOGGER = logging.getLogger(__name__)


@dataclass
class Settings:
    """The server's behaviour, built from the command line (app.py): no defaults here."""

    samples_per_chunk: int
    streaming: bool
    max_text_chars: int
    language: str | None  # --language as a model name; None: detect per sentence
    max_connections: int
    idle_timeout: float  # seconds; 0: never
    max_queue: int  # requests in the server at once (spoken or waiting)
    max_unread_seconds: float  # audio a client may leave unread before it is dropped
    max_stream_chars: int  # longest text of one stream (its sentences are bounded anyway)
    max_connections_per_peer: int  # 0: half of max_connections
    max_queue_per_peer: int  # 0: half of max_queue


@dataclass
class Service:
    """What every connection and every request shares."""

    settings: Settings
    catalog: Catalog
    synthesizer: Synthesizer
    admission: Admission = field(init=False)
    stopping: bool = False  # shutting down: refuse new connections and requests
    connections: set = field(default_factory=set)  # the Wyoming connections being served

    def __post_init__(self) -> None:
        settings = self.settings
        self.admission = Admission(settings.max_connections, settings.max_queue,
                                   settings.max_connections_per_peer, settings.max_queue_per_peer)


@dataclass
class Failure:
    """Why a request ends without (all of) its audio, as the client is told."""

    code: str
    text: str


class SlowClient(ConnectionError):
    """The client left more audio unread than allowed."""


class Speech:
    """One request to speak; see the module docstring."""

    def __init__(self, service: Service, lane: Lane, *, streaming: bool,
                 voice: str | None = None, language: str | None = None,
                 capacity: int | None = None, instruct: str | None = None,
                 peer: str = "local") -> None:
        self.service = service
        self.peer = peer  # the client's address (per-peer limits)
        self.instruct = instruct  # replaces the voice's style/description (HTTP instructions)
        self.lane = lane
        self.streaming = streaming
        self.ticket = Ticket()
        # the segments in order, then None; or a Failure (then None)
        self.parts: asyncio.Queue[Job | Failure | None] = asyncio.Queue()
        self.capacity = capacity or int(service.settings.max_unread_seconds * BYTES_PER_SECOND)
        self.chars = 0
        self.segments = 0
        self.received = time.monotonic()
        self.first_submitted: float | None = None
        self.closed = False  # nothing more will be queued
        self.finished = False  # answered (the front door has called done())
        self.counted = False  # holds a place in the queue (admission)
        self.results: list[SegmentResult] = []
        self.failure: Failure | None = None
        self.voice: str | None = None  # the catalog's name; None: the default voice
        self.language: str | None = service.settings.language  # None: detect per sentence
        self._segmenter = Segmenter() if streaming else None
        failure = self._resolve(voice, language)
        if failure is not None:
            self.fail(failure.code, failure.text)

    # -- admission ----------------------------------------------------------------------
    def _resolve(self, voice: str | None, language: str | None) -> Failure | None:
        catalog = self.service.catalog
        if voice:
            if catalog.known:
                found = catalog.voice(voice)
                if found is None:
                    return Failure("unknown-voice", catalog.unknown_voice(clip(voice)))
                self.voice = found.name
            else:
                self.voice = voice  # the router checks it once the model is loaded
        if language:
            wanted = to_model_language(language)
            if wanted is None or (wanted != AUTO and catalog.languages
                                  and wanted not in catalog.languages):
                return Failure("unsupported-language",
                               f"language {clip(language)!r} is not one of "
                               f"{', '.join(catalog.languages) or 'the model languages'}")
            self.language = wanted
        return None

    def _admit(self) -> bool:
        """Take a queue place (when the first segment is ready); False: refused, failed."""
        admission = self.service.admission
        if self.service.stopping:
            self.fail("shutting-down", "the server is shutting down")
            return False
        refusal = admission.request_refusal(self.peer)
        if refusal is not None:
            _LOGGER.warning("Queue full for %s: %s (--max-queue, --max-queue-per-peer)",
                            clip(self.peer), refusal)
            self.fail("queue-full", refusal)
            return False
        admission.take_request(self.peer)
        self.counted = True
        return True

    # -- text in --------------------------------------------------------------------------
    def fail(self, code: str, text: str) -> None:
        """End the request with this failure (unless it is closed already)."""
        if not self.closed:
            self.parts.put_nowait(Failure(code, text))
            self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.parts.put_nowait(None)

    def _too_long(self) -> bool:
        settings = self.service.settings
        limit = settings.max_stream_chars if self.streaming else settings.max_text_chars
        if self.chars > limit:
            what = "the stream's text" if self.streaming else "text"
            self.fail("text-too-long", f"{what} is {self.chars} characters; the limit is {limit}")
            return True
        return False

    def _submit(self, text: str) -> None:
        if self.closed or (not self.counted and not self._admit()):
            return
        channel = Channel(asyncio.get_running_loop(), capacity=self.capacity)
        job = Job(text, self.voice, self.language, self.ticket, channel, self.lane,
                  self.instruct)
        if self.first_submitted is None:
            self.first_submitted = time.monotonic()
        self.segments += 1
        self.parts.put_nowait(job)
        self.service.synthesizer.submit(job)

    def say(self, text: str) -> None:
        """The whole text of a one-shot request; the request is closed after it."""
        self.chars = len(text)
        if self.closed or self._too_long():
            return
        segments = split_text(clean(text))
        if not segments:
            self.fail("empty-text", "nothing to say: the text is empty or has no words")
            return
        for segment in segments:
            self._submit(segment)
            if self.closed:  # refused
                return
        self.close()

    def add_text(self, delta: str) -> None:
        """A piece of a streamed text (any size, sentence boundaries anywhere)."""
        if self.closed or self._segmenter is None:
            return
        self.chars += len(delta)
        if self._too_long():
            return
        for segment in self._segmenter.add(clean(delta)):
            self._submit(segment)

    def end_text(self) -> None:
        """The streamed text is complete: speak what is left, then close."""
        if self.closed or self._segmenter is None:
            return
        for segment in self._segmenter.finish():
            self._submit(segment)
        if self.closed:
            return
        if self.segments == 0:
            self.fail("empty-text", "nothing to say: the stream had no words")
        self.close()

    def cancel(self) -> None:
        """Stop generating (client gone, error): the worker stops within a frame."""
        self.ticket.cancel.set()

    # -- audio out ------------------------------------------------------------------------
    async def audio(self) -> AsyncIterator[bytes]:
        """The request's PCM in order, as it is generated.  Afterwards `failure` says how it
        ended (None: all of it was spoken).  Raises SlowClient if the worker found the audio
        unread for too long."""
        while self.failure is None:
            part = await self.parts.get()
            if part is None:
                break
            if isinstance(part, Failure):
                self.failure = part
                break
            while not isinstance(item := await part.channel.get(), SegmentResult):
                yield item
            self.results.append(item)
            if item.error_code:
                self.failure = Failure(item.error_code, item.error_text or item.error_code)
            elif item.cancelled:
                if self.ticket.stalled:  # the worker found the client's audio unread
                    raise SlowClient(f"more than {self.capacity / BYTES_PER_SECOND:g} s of "
                                     "audio left unread")
                self.failure = Failure("cancelled", "synthesis was cancelled")
        if self.failure is not None:
            self.cancel()  # skip its queued segments
            self.close()
            _LOGGER.warning("Request failed (%s): %s", self.failure.code, self.failure.text)

    def done(self) -> None:
        """The front door has answered the request: give its queue place back."""
        self.finished = True
        if self.counted:
            self.counted = False
            self.service.admission.release_request(self.peer)

    def log(self, samples: int, first_audio: float | None, kind: str) -> None:
        """One line per answered request (and the audio digest at debug level)."""
        results = self.results
        if not results or self.failure is not None:
            return
        begin = self.first_submitted or self.received
        audio_seconds = samples / SAMPLE_RATE
        engine_seconds = sum(r.seconds for r in results)
        languages = ",".join(dict.fromkeys(str(r.language) for r in results))
        voices = ",".join(dict.fromkeys(str(r.voice) for r in results))
        _LOGGER.info(
            "%s: %d chars, %d segment(s), voice=%s, language=%s, first audio %s, total %.2f s, "
            "%.2f s of audio, RTF %s", kind, self.chars, len(results), voices, languages,
            f"{first_audio - begin:.2f} s" if first_audio is not None else "-",
            time.monotonic() - begin, audio_seconds,
            f"{engine_seconds / audio_seconds:.2f}" if audio_seconds else "-",
        )
        _LOGGER.debug("Request audio: %d chars, frames=%d samples=%d sha256=%s", self.chars,
                      sum(r.frames for r in results), samples, self.ticket.digest.hexdigest())


def samples_of(pcm: bytes) -> int:
    return len(pcm) // SAMPLE_WIDTH
