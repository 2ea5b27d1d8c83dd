"""Find a checkpoint (local folder or Hugging Face repo id) and load it per component.

Loading goes through the library's normal `from_pretrained` path; then each component gets
its own precision (see precision.py): the talker and code predictor as quantize.py converts
them (float32, bfloat16 or int8), the vocoder in float32 unless the CPU has native bf16, the
speaker encoder always in float32 (it runs once per cloned voice).
"""

from __future__ import annotations

import gc
import json
import logging
import time
from pathlib import Path

import torch

from ..contract import BASE, MODEL_TYPES, EngineLoadError
from . import quantize
from .precision import Precision
from .qwen_import import import_qwen_tts

_LOGGER = logging.getLogger(__name__)


def _looks_like_path(model: str) -> bool:
    return model.startswith(("/", ".", "~")) or Path(model).expanduser().exists() or (
        model.count("/") != 1
    )


def _progress_class():
    """A tqdm class that reports download progress in the log instead of a terminal bar."""
    from tqdm.auto import tqdm

    class LogProgress(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs["disable"] = False
            kwargs["file"] = open("/dev/null", "w")  # noqa: SIM115 - closed with the bar
            super().__init__(*args, **kwargs)
            self._last_logged = -1

        def update(self, n=1):
            result = super().update(n)
            if self.total and self.unit == "B":
                decile = int(10 * self.n / self.total)
                if decile != self._last_logged:
                    self._last_logged = decile
                    _LOGGER.info("Downloading %s: %d%% of %.0f MB", self.desc or "model",
                                 10 * decile, self.total / 1e6)
            return result

        def close(self):
            super().close()
            self.fp.close()

    return LogProgress


def resolve_checkpoint(model: str, data_dir: Path, local_files_only: bool = False) -> Path:
    """Return the local folder of `model`: itself if a folder, else its downloaded snapshot."""
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise EngineLoadError(f"{path} is not a Qwen3-TTS checkpoint folder (no config.json)")
        return path
    if _looks_like_path(model):
        raise EngineLoadError(f"model folder not found: {model}")

    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    cache_dir = Path(data_dir) / "models"
    cache_dir.mkdir(parents=True, exist_ok=True)
    _LOGGER.info("Getting %s into %s%s", model, cache_dir,
                 " (local files only)" if local_files_only else "")
    try:
        folder = snapshot_download(repo_id=model, cache_dir=str(cache_dir),
                                   local_files_only=local_files_only,
                                   tqdm_class=_progress_class())
    except LocalEntryNotFoundError as err:
        # also raised when the hub cannot be reached and nothing is cached yet
        why = ("downloads are off (--local-files-only)" if local_files_only
               else f"the download failed: {err}")
        raise EngineLoadError(f"{model} is not in {cache_dir} and {why}") from err
    except Exception as err:  # network errors, unknown repo, disk full...
        raise EngineLoadError(f"could not download {model}: {err}") from err
    return Path(folder)


def read_checkpoint_config(folder: Path) -> dict:
    with open(folder / "config.json", encoding="utf-8") as f:
        config = json.load(f)
    if config.get("tts_model_type") not in MODEL_TYPES:
        raise EngineLoadError(
            f"{folder}: unsupported tts_model_type {config.get('tts_model_type')!r} "
            f"(expected one of {', '.join(MODEL_TYPES)})"
        )
    if config.get("tokenizer_type", "qwen3_tts_tokenizer_12hz") != "qwen3_tts_tokenizer_12hz":
        raise EngineLoadError(f"{folder}: only 12 Hz checkpoints are supported")
    return config


def _exact_rope(module: torch.nn.Module) -> None:
    """Recompute rotary inverse frequencies in float32 (a bfloat16 load rounds them)."""
    for sub in module.modules():
        if hasattr(sub, "rope_init_fn") and hasattr(sub, "inv_freq"):
            inv_freq, _ = sub.rope_init_fn(sub.config, None)  # type: ignore[operator]
            sub.inv_freq = inv_freq.float()
            sub.original_inv_freq = sub.inv_freq


MMAP_THRESHOLD = 4 * 1024 * 1024


def _tune_allocator() -> None:
    """Serve allocations of 4 MiB and more from mmap, so that freed tensors go back to the
    system, and smaller ones from the heap, which reuses them.

    glibc's default threshold rises to 32 MiB after the first large free, and then every
    temporary below that stays resident: 0.3 GB more at the peak of serving the 0.6B model.
    A low threshold (256 KiB, before) maps and faults fresh pages for every temporary of the
    vocoder, chunk after chunk: its float32 step took 75-85 ms a frame instead of 45-50
    (separate processes, 2-core EPYC).  With the vocoder's convolutional decoder run 4 frames
    at a time (vocoder.TILE_FRAMES) its temporaries are below 4 MiB: measured, the whole
    stream 1.15x faster than with 256 KiB for 0.03 GB more serving peak (0.6B, auto)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-3, MMAP_THRESHOLD)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):  # not glibc
        pass


def release_freed_memory() -> None:
    """Give memory freed while converting weights back to the system.

    glibc keeps freed blocks below its mmap threshold in the heap; after the layer-by-layer
    conversion (and again after the first-load check's conversions, measured or redone from
    its cache: 0.27 GB for the 0.6B model) that is resident memory nobody uses.
    """
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def load_model(folder: Path, precision: Precision):
    """Load through `Qwen3TTSModel.from_pretrained`, then set each component's precision;
    returns the library's model and the plan of its decoder stacks (quantize.ModelPlan).

    Every part loads in the precision it is stored in (the published talker in bfloat16, the
    speech tokenizer in float32), then quantize.prepare converts the talker and the code
    predictor with the scheme of each (float32: exactly the library's arithmetic, the
    reference path), the vocoder gets its own precision, the speaker encoder stays float32,
    and except for float32 the speech tokenizer's encoder is dropped unless the model clones
    voices.  The 0.6B model in int8 then serves in about 1.6 GB of RSS (5.3 GB for the
    official float32 path); see BENCHMARKS.md.
    """
    config = read_checkpoint_config(folder)
    _tune_allocator()
    qwen_tts = import_qwen_tts()
    started = time.monotonic()
    try:
        tts = qwen_tts.Qwen3TTSModel.from_pretrained(str(folder), dtype="auto",
                                                     local_files_only=True)
    except Exception as err:
        raise EngineLoadError(f"could not load {folder}: {err}") from err
    model = tts.model.eval()
    plan = quantize.prepare(model.talker, precision.talker, precision.predictor, folder)
    if precision.generation != "float32" and config.get("tts_model_type") != BASE:
        del model.speech_tokenizer.model.encoder  # only cloning encodes audio
    model.speech_tokenizer.model.to(precision.vocoder)
    if model.speaker_encoder is not None:
        model.speaker_encoder.to(torch.float32)
    _exact_rope(model)
    release_freed_memory()
    _LOGGER.info("Loaded %s in %.1f s (%s)", folder, time.monotonic() - started,
                 precision.describe())
    return tts, plan
