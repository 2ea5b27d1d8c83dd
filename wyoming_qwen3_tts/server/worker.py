"""The one synthesis worker: a thread that owns the engines and serves segments in turn.

The engine is not thread-safe and its `stream` blocks, so exactly one thread ever touches it.
It first loads the model (the event loop meanwhile answers `describe`), then takes jobs, one
sentence each.  Each client has a `Lane` (a Wyoming connection, an HTTP request): its jobs are
served in order, and the lanes take turns, one sentence each (`Schedule`), so a short answer
never waits for another client's whole long text.  Each job's audio travels back to
the event loop through its own `Channel`: chunks are posted with `call_soon_threadsafe` and the
worker never waits for a client.  A channel holds at most `capacity` bytes the event loop has
not taken yet; past that (the connection's sender is stuck behind a client that does not read)
the job is cancelled, so a slow reader never stalls generation for the others.  Setting a request's
`cancel` event (client gone, error) makes the engine stop within one frame; queued jobs of a
cancelled request are skipped without touching the engine.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..contract import AUTO, BYTES_PER_SECOND, EngineInputError, StreamStats
from .audio_effects import Gain, silence
from .languages import LanguageDetector
from .normalize import normalize

if TYPE_CHECKING:
    from .router import VoiceRouter

_LOGGER = logging.getLogger(__name__)

CHANNEL_CAPACITY = 30 * BYTES_PER_SECOND  # bytes waiting for the event loop, per job: 30 s


@dataclass
class Ticket:
    """Worker-side state of one client request (a `synthesize` or a whole stream)."""

    cancel: threading.Event = field(default_factory=threading.Event)
    last_language: str | None = None  # detected language of the previous sentence
    digest: Any = field(default_factory=hashlib.sha256)  # of all PCM produced for it
    stalled: bool = False
    samples: int = 0  # of all PCM produced for it


@dataclass
class SegmentResult:
    """How one segment went; posted after its last chunk."""

    chars: int
    voice: str | None = None
    language: str | None = None
    frames: int = 0
    first_audio_frame: int | None = None
    samples: int = 0
    hit_frame_cap: bool = False
    seconds: float = 0.0  # engine wall time for this segment
    first_audio_seconds: float | None = None
    error_code: str | None = None
    error_text: str | None = None
    cancelled: bool = False


class Channel:
    """Carries one job's PCM chunks, then its SegmentResult, to the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, capacity: int = CHANNEL_CAPACITY) -> None:
        self._loop = loop
        self._items: asyncio.Queue = asyncio.Queue()
        self._capacity = capacity
        self._pending = 0  # bytes posted, not yet taken by the event loop
        self._lock = threading.Lock()

    # -- worker thread ---------------------------------------------------------------------
    def put(self, pcm: bytes) -> bool:
        """Post a chunk without waiting; False if more than `capacity` bytes would be waiting
        (the client is not reading) or the event loop is gone."""
        with self._lock:
            if self._pending and self._pending + len(pcm) > self._capacity:
                return False
            self._pending += len(pcm)
        return self._post(pcm)

    def finish(self, result: SegmentResult) -> None:
        self._post(result)

    def _post(self, item) -> bool:
        try:
            self._loop.call_soon_threadsafe(self._items.put_nowait, item)
            return True
        except RuntimeError:  # event loop closed: shutting down
            return False

    # -- event loop ------------------------------------------------------------------------
    async def get(self) -> bytes | SegmentResult:
        item = await self._items.get()
        if isinstance(item, bytes):
            with self._lock:
                self._pending -= len(item)
        return item


class Lane:
    """One client's place in the worker's rotation: its jobs, in order."""

    def __init__(self, name: str = "") -> None:
        self.name = name
        self.jobs: collections.deque[Job] = collections.deque()
        self.turn = 0  # the round in which it is served next (Schedule)
        self.order = 0  # when it started waiting: ties go to the earlier


@dataclass
class Job:
    text: str
    voice: str | None  # None: the default voice
    language: str | None  # a model language name or "auto"; None: detect from the text
    ticket: Ticket
    channel: Channel
    lane: Lane = field(default_factory=Lane)
    instruct: str | None = None  # a style/description for this request (HTTP `instructions`)


class Schedule:
    """The worker's jobs: the lanes with work take turns, one job each.

    Each lane waits for its round: taking a job moves its lane to the next round, and a lane
    that starts waiting joins the current round.  So a client that asks while another one's
    long text is being spoken is served after the sentence in progress, not after the whole
    text; lanes in the same round go in the order they started waiting."""

    def __init__(self) -> None:
        self._waiting: list[Lane] = []
        self._round = 0  # the round of the job taken last
        self._arrivals = itertools.count()
        self._changed = threading.Condition()
        self._stopped = False

    def put(self, job: Job) -> None:
        with self._changed:
            lane = job.lane
            if not lane.jobs:
                lane.turn = max(lane.turn, self._round)
                lane.order = next(self._arrivals)
                self._waiting.append(lane)
            lane.jobs.append(job)
            self._changed.notify()

    def stop(self) -> None:
        """`get` returns None once the jobs queued so far are taken."""
        with self._changed:
            self._stopped = True
            self._changed.notify_all()

    def get(self, block: bool = True) -> Job | None:
        """The next job; None when stopped (or, with block=False, when there is none)."""
        with self._changed:
            while not self._waiting:
                if self._stopped or not block:
                    return None
                self._changed.wait()
            lane = min(self._waiting, key=lambda each: (each.turn, each.order))
            job = lane.jobs.popleft()
            self._round = lane.turn
            lane.turn += 1
            if not lane.jobs:
                self._waiting.remove(lane)
            return job


@dataclass
class Loaded:
    """What the loader hands the worker."""

    router: VoiceRouter
    detector: LanguageDetector | None  # None: --language fixes the language
    normalize: bool = True  # numbers, units, times... spelled out (normalize.py)
    sentence_silence: float = 0.0  # seconds of silence between the sentences of an answer
    gain: Gain | None = None  # --volume; None: as generated

    @property
    def default_voice(self) -> str | None:
        return self.router.default_voice


class Synthesizer:
    """Owns the worker thread; `submit` is called from the event loop."""

    def __init__(self, load: Callable[[], Loaded]) -> None:
        self._load = load
        self._jobs = Schedule()
        self._thread = threading.Thread(target=self._run, name="synthesis", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self.ready: asyncio.Future | None = None  # result: Loaded; exception: load failure

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.ready = loop.create_future()
        self._thread.start()

    def submit(self, job: Job) -> None:
        self._jobs.put(job)

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the worker to finish the jobs it has (cancel them first to be quick)."""
        self._jobs.stop()
        if self._thread.is_alive():
            self._thread.join(timeout)

    # -- worker thread -----------------------------------------------------------------------
    def _resolve(self, outcome: Loaded | None, error: BaseException | None) -> None:
        assert self.ready is not None
        if self.ready.done():
            return
        if error is not None:
            self.ready.set_exception(error)
        else:
            self.ready.set_result(outcome)

    def _notify(self, outcome: Loaded | None, error: BaseException | None) -> None:
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(self._resolve, outcome, error)
        except RuntimeError:
            pass

    def _run(self) -> None:
        try:
            loaded = self._load()
        except BaseException as err:  # noqa: BLE001 - reported to the event loop
            self._refuse_waiting(err)  # answered before the event loop hears of the failure
            self._notify(None, err)
            self._refuse_all(err)
            return
        self._notify(loaded, None)
        while (job := self._jobs.get()) is not None:
            self._serve(loaded, job)

    @staticmethod
    def _refuse(job: Job, err: BaseException) -> None:
        job.channel.finish(SegmentResult(len(job.text), error_code="model-not-loaded",
                                         error_text=f"the model could not be loaded: {err}"))

    def _refuse_waiting(self, err: BaseException) -> None:
        while (job := self._jobs.get(block=False)) is not None:
            self._refuse(job, err)

    def _refuse_all(self, err: BaseException) -> None:
        while (job := self._jobs.get()) is not None:
            self._refuse(job, err)

    def _serve(self, loaded: Loaded, job: Job) -> None:
        ticket = job.ticket
        result = SegmentResult(len(job.text))
        if ticket.cancel.is_set():
            result.cancelled = True
            job.channel.finish(result)
            return

        voice = job.voice or loaded.default_voice
        language = job.language
        if language is None:
            language = (loaded.detector.choose(job.text, ticket.last_language,
                                               loaded.router.voice_language(voice))
                        if loaded.detector is not None else AUTO)
            if language != AUTO:
                ticket.last_language = language
        result.voice, result.language = voice, language
        text = job.text
        if loaded.normalize and language != AUTO:
            text = normalize(job.text, language)
            if text != job.text:
                _LOGGER.debug("Normalized (%s): %r -> %r", language, job.text[:300], text[:300])
        pause = (silence(loaded.sentence_silence)
                 if loaded.sentence_silence and ticket.samples else b"")

        stats = StreamStats()
        started = time.monotonic()
        stream = None
        try:
            stream = loaded.router.stream(text, voice=voice, language=language,
                                          cancel=ticket.cancel, stats=stats,
                                          instruct=job.instruct)
            for pcm in stream:
                if not pcm:
                    continue
                if loaded.gain is not None:
                    pcm = loaded.gain(pcm)
                if result.first_audio_frame is None:
                    result.first_audio_frame = stats.frames
                    result.first_audio_seconds = time.monotonic() - started
                    pcm = pause + pcm  # between this sentence and the one before
                ticket.digest.update(pcm)
                ticket.samples += len(pcm) // 2
                result.samples += len(pcm) // 2
                if not job.channel.put(pcm):
                    if not ticket.cancel.is_set():
                        _LOGGER.warning("Client is not reading its audio: cancelling its "
                                        "request")
                        ticket.stalled = True
                        ticket.cancel.set()
                    break
        except EngineInputError as err:
            result.error_code, result.error_text = "invalid-request", str(err)
        except Exception as err:  # noqa: BLE001 - any engine failure ends this request only
            _LOGGER.exception("Synthesis failed for %r", job.text[:80])
            result.error_code = "synthesis-failed"
            result.error_text = f"synthesis failed: {type(err).__name__}: {err}"
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()  # frees the engine's caches when stopped early
        result.cancelled = ticket.cancel.is_set()
        if result.error_code:
            ticket.cancel.set()  # the request ends here: its later segments are skipped
        result.frames = stats.frames
        result.hit_frame_cap = bool(stats.hit_frame_cap)
        result.seconds = time.monotonic() - started
        _LOGGER.debug(
            "Segment: %d chars, voice=%s, language=%s, %d frames (first audio after %s of "
            "them), %d samples, %.2f s%s%s", result.chars, voice, language, result.frames,
            result.first_audio_frame, result.samples, result.seconds,
            ", hit the frame cap" if result.hit_frame_cap else "",
            ", cancelled" if result.cancelled else "",
        )
        job.channel.finish(result)
