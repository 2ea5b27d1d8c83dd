"""An in-process server around a stand-in engine whose pace the test sets.

For fast tests of the server's own logic (admission, turns, idle, cancelling, errors): the
real Wyoming server, catalog, router, pool and worker, on real sockets, with the wyoming
client — only the engine is replaced by `GatedEngine`, which implements contract.Engine
and produces one 80 ms frame of a known waveform per `step` the test allows.  Holding the
gate keeps the worker in a known state for as long as the test wants, so nothing here
depends on how fast the machine is.  The real engine is tested on real checkpoints
elsewhere (test_engine.py, test_server.py).
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from wyoming.server import AsyncTcpServer

from wyoming_qwen3_tts.contract import CUSTOM_VOICE, SAMPLES_PER_FRAME, EngineInputError
from wyoming_qwen3_tts.dev.serverproc import free_port
from wyoming_qwen3_tts.server.catalog import Catalog, CheckpointSummary
from wyoming_qwen3_tts.server.connection import Qwen3TtsEventHandler
from wyoming_qwen3_tts.server.languages import LanguageDetector
from wyoming_qwen3_tts.server.pool import ModelPool
from wyoming_qwen3_tts.server.router import VoiceRouter
from wyoming_qwen3_tts.server.speech import Service, Settings
from wyoming_qwen3_tts.server.worker import Loaded, Synthesizer

MODEL = "test/gated"


@dataclass
class Call:
    text: str
    speaker: str | None
    language: str
    cancelled: bool = False
    frames: int = 0


class GatedEngine:
    """contract.Engine, frame by frame under the test's control.

    `frames_per_char` frames per character of text (at least one); each frame waits for the
    gate when `gated` (a semaphore: `allow(n)` lets n frames through)."""

    model_type = CUSTOM_VOICE
    size = "1b7"
    speakers = ["ryan", "vivian"]
    languages = ["english", "german", "chinese"]
    honours_instruct = True

    def __init__(self, frames_per_char: float = 0.25) -> None:
        self.frames_per_char = frames_per_char
        self.gated = False
        self._gate = threading.Semaphore(0)
        self.calls: list[Call] = []
        self.started = threading.Condition()

    def allow(self, frames: int = 1) -> None:
        for _ in range(frames):
            self._gate.release()

    def open(self) -> None:
        """No more gating; frames flow freely."""
        self.gated = False
        self.allow(10_000)

    def wait_calls(self, count: int, timeout: float = 30.0) -> None:
        """Wait until `count` segments have been started by the worker."""
        with self.started:
            assert self.started.wait_for(lambda: len(self.calls) >= count, timeout), \
                [c.text for c in self.calls]

    def stream(self, text, *, speaker=None, language="auto", instruct=None, clone=None,
               cancel=None, stats=None, max_frames=None):
        if not text.strip():
            raise EngineInputError("empty text: nothing to speak")
        if "FAIL" in text:  # a segment the engine cannot speak
            raise RuntimeError("the stand-in engine was asked to fail")
        call = Call(text, speaker, language)
        with self.started:
            self.calls.append(call)
            self.started.notify_all()
        frames = max(1, int(len(text) * self.frames_per_char))
        if max_frames is not None:
            frames = min(frames, max_frames)
        return self._frames(call, frames, cancel, stats)

    def _frames(self, call: Call, frames: int, cancel, stats):
        for index in range(frames):
            while self.gated and not self._gate.acquire(timeout=0.05):
                if cancel is not None and cancel.is_set():
                    break
            if cancel is not None and cancel.is_set():
                call.cancelled = True
                return
            call.frames += 1
            if stats is not None:
                stats.frames = index + 1
            value = (len(self.calls) * 97 + index) % 2000 + 100
            yield value.to_bytes(2, "little", signed=True) * SAMPLES_PER_FRAME

    def clone_prompt(self, source):
        raise EngineInputError("this stand-in engine does not clone")

    def warmup(self, clone=None) -> None:
        pass


@dataclass
class InProcessServer:
    engine: GatedEngine
    service: Service
    port: int
    tasks: list = field(default_factory=list)


def settings(**changes) -> Settings:
    values = dict(samples_per_chunk=1024, streaming=True, max_text_chars=2000, language=None,
                  max_connections=16, idle_timeout=0, max_queue=8, max_unread_seconds=30.0,
                  max_stream_chars=100_000, max_connections_per_peer=0, max_queue_per_peer=0)
    values.update(changes)
    return Settings(**values)


async def start(engine: GatedEngine, loaded: dict | None = None,
                **changes) -> tuple[InProcessServer, AsyncTcpServer]:
    """The server on a free loopback port, its worker serving `engine`; `loaded`: more of
    worker.Loaded (normalize, sentence_silence, gain, detect: bool), `changes`: Settings."""
    extra = dict(loaded or {})
    detect = extra.pop("detect", False)
    catalog = Catalog([MODEL], streaming=True)
    catalog.set_checkpoint(MODEL, CheckpointSummary(CUSTOM_VOICE, list(engine.speakers),
                                                    list(engine.languages), "test", "1b7"))

    def load() -> Loaded:
        router = VoiceRouter(catalog, ModelPool(Path, lambda _m, _f: engine))
        router.pool._on_load = router.loaded
        router.pool.get(MODEL)
        router.default_voice = "ryan"
        detector = LanguageDetector(engine.languages) if detect else None
        return Loaded(router=router, detector=detector, **extra)

    synthesizer = Synthesizer(load)
    service = Service(settings=settings(**changes), catalog=catalog, synthesizer=synthesizer)
    port = free_port()
    server = AsyncTcpServer("127.0.0.1", port)
    await server.start(partial(Qwen3TtsEventHandler, service))
    synthesizer.start(asyncio.get_running_loop())
    assert synthesizer.ready is not None
    await synthesizer.ready
    return InProcessServer(engine, service, port), server


async def stop(server: AsyncTcpServer, running: InProcessServer) -> None:
    running.engine.open()
    await server.stop()
    await asyncio.to_thread(running.service.synthesizer.stop, 5.0)
