"""Several checkpoints in one server: loaded when first needed, evicted when memory is short.

Everything here runs in the one synthesis thread (synthesis.py), which owns every engine:

- `ModelPool` keeps the loaded engines in least-recently-used order.  Before a checkpoint is
  loaded, engines are evicted (logged) while more than `max_loaded` would stay loaded, or,
  with `max_loaded` 0, while the estimated need of the new one (twice its safetensors files:
  the library loads float32, our precision is applied after) does not fit in the available
  RAM (psutil).  The one in use is never evicted: jobs run one at a time.
- `VoiceRouter` is what the worker calls `engine`: `stream(text, speaker=<voice name>, ...)`
  looks the voice up in the catalog, gets its checkpoint's engine from the pool, its clone
  prompt from the cache, and streams.
"""

from __future__ import annotations

import gc
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from .catalog import BUILTIN, CLONED, DESIGNED, Catalog, Voice, summarize_engine

_LOGGER = logging.getLogger(__name__)

MEMORY_MARGIN = 512 * 1024 * 1024  # left free for activations, caches and the rest
GIB = 1024**3


def checkpoint_bytes(folder: Path) -> int:
    """Bytes of a checkpoint's weight files (the model's and its speech tokenizer's)."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*.safetensors"))


def estimate_memory(folder: Path) -> int:
    """RAM a checkpoint needs while loading: its weights read as float32 (about twice the
    bfloat16 files of Qwen's releases) before the chosen precision is applied."""
    return 2 * checkpoint_bytes(folder)


def available_memory() -> int:
    import psutil

    return int(psutil.virtual_memory().available)


class ModelPool:
    def __init__(self, resolve: Callable[[str], Path], load: Callable[[str, Path], object],
                 max_loaded: int = 0, *,
                 estimate: Callable[[Path], int] = estimate_memory,
                 available: Callable[[], int] = available_memory,
                 on_load: Callable[[str, object], None] | None = None,
                 on_evict: Callable[[str], None] | None = None) -> None:
        self._resolve = resolve  # model -> local checkpoint folder (downloads if needed)
        self._load = load  # (model, folder) -> engine
        self.max_loaded = max_loaded  # 0: as many as fit in RAM
        self._estimate = estimate
        self._available = available
        self._on_load = on_load
        self._on_evict = on_evict
        self._engines: OrderedDict[str, object] = OrderedDict()
        self.folders: dict[str, Path] = {}
        self.loads = 0

    @property
    def loaded(self) -> list[str]:
        return list(self._engines)

    def folder(self, model: str) -> Path:
        if model not in self.folders:
            self.folders[model] = Path(self._resolve(model))
        return self.folders[model]

    def get(self, model: str):
        """The engine of `model`, loaded now if it is not."""
        engine = self._engines.get(model)
        if engine is not None:
            self._engines.move_to_end(model)
            return engine
        folder = self.folder(model)
        self._make_room(model, folder)
        started = time.monotonic()
        engine = self._load(model, folder)
        self.loads += 1
        self._engines[model] = engine
        _LOGGER.info("Loaded model %s in %.1f s (%d loaded: %s)", model,
                     time.monotonic() - started, len(self._engines), ", ".join(self._engines))
        if self._on_load is not None:
            self._on_load(model, engine)
        return engine

    def _make_room(self, model: str, folder: Path) -> None:
        if self.max_loaded > 0:
            while self._engines and len(self._engines) >= self.max_loaded:
                self.evict(reason=f"at most {self.max_loaded} model(s) stay loaded "
                                  "(--max-loaded-models)")
            return
        need = self._estimate(folder) + MEMORY_MARGIN
        while self._engines and (free := self._available()) < need:
            self.evict(reason=f"{model} needs about {need / GIB:.1f} GB, "
                              f"{free / GIB:.1f} GB available")
        if not self._engines and (free := self._available()) < need:
            _LOGGER.warning("Loading %s, which needs about %.1f GB, with %.1f GB available",
                            model, need / GIB, free / GIB)

    def evict(self, reason: str = "") -> str | None:
        """Unload the least recently used engine; returns its model."""
        if not self._engines:
            return None
        model, engine = self._engines.popitem(last=False)
        del engine
        gc.collect()
        _LOGGER.info("Evicted model %s%s", model, f": {reason}" if reason else "")
        if self._on_evict is not None:
            self._on_evict(model)
        return model


class VoiceRouter:
    """The worker's `engine`: speaks a text in a catalog voice, on that voice's checkpoint."""

    def __init__(self, catalog: Catalog, pool: ModelPool, clone_cache,
                 default_voice: str | None = None) -> None:
        self.catalog = catalog
        self.pool = pool
        self.clone_cache = clone_cache
        self.default_voice = default_voice

    def clone_prompt(self, voice: Voice, engine):
        return self.clone_cache.get(voice_source(voice), engine.model,
                                    self.pool.folder(voice.model))

    def prepare(self, model: str, engine) -> None:
        """Ready every cloned voice of a just-loaded checkpoint (computed or from the disk
        cache), so its first request does not wait for it; a failing one is logged."""
        for voice in self.catalog.voices_of(model):
            if voice.kind != CLONED:
                continue
            try:
                self.clone_prompt(voice, engine)
            except Exception as err:  # noqa: BLE001 - one bad voice must not stop the others
                _LOGGER.error("Voice %s (%s): could not prepare its clone prompt: %s",
                              voice.name, voice.reference, err)

    def warmup(self, model: str, engine) -> None:
        """The engine's own warm-up; a Base checkpoint warms up with its first cloned voice."""
        if engine.model_type != "base":
            engine.warmup()
            return
        voice = next((v for v in self.catalog.voices_of(model) if v.kind == CLONED), None)
        if voice is None:
            return
        import torch

        started = time.monotonic()
        with torch.inference_mode():
            for _ in self.stream("Hello.", speaker=voice.name, language="english",
                                 max_frames=4):
                pass
        _LOGGER.info("Warm-up done in %.1f s (voice %s)", time.monotonic() - started,
                     voice.name)

    def stream(self, text: str, *, speaker: str | None = None, language: str = "auto",
               cancel=None, stats=None, max_frames: int | None = None):
        from .engine import EngineInputError

        name = speaker or self.default_voice
        voice = self.catalog.voice(name) if name else None
        if name and voice is None:
            raise EngineInputError(f"unknown voice {name!r}; voices: "
                                   f"{', '.join(self.catalog.speakers) or 'none'}")
        model = voice.model if voice is not None else self.catalog.first_model
        engine = self.pool.get(model)
        kwargs: dict = {}
        if voice is not None:
            if voice.kind == BUILTIN:
                kwargs.update(speaker=voice.speaker, instruct=voice.instruct)
            elif voice.kind == DESIGNED:
                kwargs.update(instruct=voice.instruct)
            elif voice.kind == CLONED:
                try:
                    kwargs.update(clone=self.clone_prompt(voice, engine))
                except ValueError as err:  # the reference changed into something unusable
                    raise EngineInputError(f"voice {voice.name}: {err}") from err
        if language != "auto" and language not in engine.languages:
            language = "auto"
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


def voice_source(voice: Voice):
    from .cloning import CloneSource

    assert voice.reference is not None
    return CloneSource(voice.name, voice.reference, voice.transcript)


def engine_loaded(catalog: Catalog, model: str, engine) -> None:
    """Tell the catalog what a loaded checkpoint really offers."""
    catalog.set_checkpoint(model, summarize_engine(engine), loaded=True)
