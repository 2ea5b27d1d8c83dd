"""Several checkpoints in one server: loaded when first needed, evicted when memory is short.

`ModelPool` runs in the one synthesis thread (worker.py), which owns every engine.  It keeps
the loaded engines in least-recently-used order.  Before a checkpoint is loaded, engines are
evicted (logged) while more than `max_loaded` would stay loaded, or, with `max_loaded` 0,
while the estimated need of the new one (twice its safetensors files) does not fit in the
available RAM (psutil).  The one in use is never evicted: jobs run one at a time.
"""

from __future__ import annotations

import gc
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from ..contract import Engine, EngineFactory

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
    def __init__(self, resolve: Callable[[str], Path], load: EngineFactory,
                 max_loaded: int = 0, *,
                 estimate: Callable[[Path], int] = estimate_memory,
                 available: Callable[[], int] = available_memory,
                 on_load: Callable[[str, Engine], None] | None = None) -> None:
        self._resolve = resolve  # model -> local checkpoint folder (downloads if needed)
        self._load = load  # (model, folder) -> engine
        self.max_loaded = max_loaded  # 0: as many as fit in RAM
        self._estimate = estimate
        self._available = available
        self._on_load = on_load
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self.folders: dict[str, Path] = {}

    @property
    def loaded(self) -> list[str]:
        return list(self._engines)

    def folder(self, model: str) -> Path:
        if model not in self.folders:
            self.folders[model] = Path(self._resolve(model))
        return self.folders[model]

    def get(self, model: str) -> Engine:
        """The engine of `model`, loaded now if it is not."""
        engine = self._engines.get(model)
        if engine is not None:
            self._engines.move_to_end(model)
            return engine
        folder = self.folder(model)
        self._make_room(model, folder)
        started = time.monotonic()
        engine = self._load(model, folder)
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
        return model
