"""From a catalog voice to the engine that speaks it: the only server module that calls one.

Runs in the one synthesis thread (worker.py).  `stream(text, voice=<voice name>, ...)` looks
the voice up in the catalog, gets its checkpoint's engine from the pool (loading it if
needed), adds what the voice brings (a built-in speaker and style, a description, a cloned
voice's prompt) and streams.  When a checkpoint has been loaded, `loaded` tells the catalog
what it really offers and prepares its cloned voices, so their first request does not wait.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from ..contract import AUTO, BASE, CloneSource, Engine, EngineInputError, StreamStats
from .catalog import Catalog, Voice, summarize_engine
from .languages import speaker_language
from .pool import ModelPool
from .voice_folders import BUILTIN, CLONED, DESIGNED

_LOGGER = logging.getLogger(__name__)


class VoiceRouter:
    """Speaks a text in a catalog voice, on that voice's checkpoint."""

    def __init__(self, catalog: Catalog, pool: ModelPool,
                 default_voice: str | None = None) -> None:
        self.catalog = catalog
        self.pool = pool
        self.default_voice = default_voice

    def loaded(self, model: str, engine: Engine) -> None:
        """A checkpoint has just been loaded: tell the catalog what it offers and ready its
        cloned voices (computed or from the disk cache); one that fails is left out."""
        self.catalog.set_checkpoint(model, summarize_engine(engine), loaded=True)
        for voice in self.catalog.voices_of(model):
            if voice.kind == CLONED:
                self._clone_prompt(engine, voice)

    def _clone_prompt(self, engine: Engine, voice: Voice):
        """The voice's clone prompt, or None: it failed and the voice is left out (any
        failure preparing one voice costs that voice only)."""
        try:
            return engine.clone_prompt(clone_source(voice))
        except Exception as err:  # noqa: BLE001 - one bad voice must not stop the others
            self.catalog.exclude(voice.name, f"could not prepare its clone prompt: "
                                             f"{type(err).__name__}: {str(err)[:300]}")
            return None

    def warmup(self, model: str) -> None:
        """The engine's warm-up; a Base checkpoint warms up with its first cloned voice that
        works (one that fails is left out, the next is tried)."""
        engine = self.pool.get(model)
        if engine.model_type != BASE:
            engine.warmup()
            return
        for voice in [v for v in self.catalog.voices_of(model) if v.kind == CLONED]:
            prompt = self._clone_prompt(engine, voice)
            if prompt is None:
                continue
            started = time.monotonic()
            try:
                engine.warmup(clone=prompt)
            except Exception as err:  # noqa: BLE001 - costs that voice only
                self.catalog.exclude(voice.name, f"warm-up failed: {type(err).__name__}: "
                                                 f"{str(err)[:300]}")
                continue
            _LOGGER.info("Warm-up done in %.1f s (voice %s)", time.monotonic() - started,
                         voice.name)
            return

    def voice_language(self, voice: str | None) -> str | None:
        """The language a voice speaks natively, if known (built-in speakers): what a
        sentence too short to detect is spoken in when nothing else tells."""
        found = self.catalog.voice(voice or self.default_voice)
        if found is None or found.kind != BUILTIN:
            return None
        return speaker_language(found.speaker)

    def stream(self, text: str, *, voice: str | None = None, language: str = AUTO,
               cancel: threading.Event | None = None, stats: StreamStats | None = None,
               max_frames: int | None = None, instruct: str | None = None) -> Iterator[bytes]:
        """Speak `text` in the voice named `voice` (None: the default voice); `instruct`
        replaces the voice's own style or description (built-in and designed voices)."""
        name = voice or self.default_voice
        found: Voice | None = None
        if name:
            found = self.catalog.voice(name)
            if found is None and voice is None:  # the default voice has been left out
                found = self.catalog.default_voice(None)
            elif found is None:
                why = self.catalog.left_out(name)
                raise EngineInputError(f"voice {name} is not available: {why}" if why
                                       else self.catalog.unknown_voice(name))
        model = found.model if found is not None else self.catalog.first_model
        engine = self.pool.get(model)
        kwargs: dict = {}
        if found is not None:
            if found.kind == BUILTIN:
                kwargs.update(speaker=found.speaker, instruct=found.instruct)
            elif found.kind == DESIGNED:
                kwargs.update(instruct=found.instruct)
            elif found.kind == CLONED:
                prompt = self._clone_prompt(engine, found)
                if prompt is None:  # its recording changed into something unusable
                    raise EngineInputError(f"voice {found.name} is not available: "
                                           f"{self.catalog.left_out(found.name)}")
                kwargs.update(clone=prompt)
            if instruct is not None and found.kind in (BUILTIN, DESIGNED):
                kwargs["instruct"] = instruct
        if language != AUTO and language not in engine.languages:
            language = AUTO
        return engine.stream(text, language=language, cancel=cancel, stats=stats,
                             max_frames=max_frames, **kwargs)


def prefetch(catalog: Catalog, models: list[str], resolve: Callable[[str], Path]) -> None:
    """Download checkpoints that are not local folders, so their first use does not wait for
    it, and learn the voices of those not known yet (runs in a thread of its own: downloads
    only, no model code)."""
    from .catalog import peek_checkpoint

    for model in models:
        if Path(model).expanduser().exists():
            continue
        try:
            folder = resolve(model)
        except Exception as err:  # noqa: BLE001 - retried when one of its voices is used
            _LOGGER.error("Could not get %s: %s", model, err)
            continue
        summary = peek_checkpoint(str(folder), folder)
        if summary is not None:
            catalog.set_checkpoint(model, summary)


def clone_source(voice: Voice) -> CloneSource:
    assert voice.reference is not None
    return CloneSource(voice.name, voice.reference, voice.transcript)
