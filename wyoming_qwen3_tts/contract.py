"""What the server side and the engine side agree on; imports neither torch nor wyoming.

The server (``server/``, later other front doors) asks an engine to speak; the engine
(``engine/``) turns text into PCM.  They meet only here:

- the audio format every engine produces (24 kHz, 16-bit little-endian, mono PCM, in whole
  80 ms frames of 1920 samples);
- ``Engine``: what a loaded checkpoint offers (kind, built-in speakers, languages) and what it
  does (speak one text segment, prepare a cloned voice, warm up);
- ``EngineFactory``: how the composition root (``app.py``) gives the server a way to load a
  checkpoint without the server importing the engine;
- the errors (``EngineInputError``: the request cannot be spoken as asked; ``EngineLoadError``:
  the checkpoint could not be found or loaded) and ``StreamStats``, filled in while a segment
  is spoken.

Words: a *voice* is what a client names (any catalog entry); a *speaker* is one of a
CustomVoice checkpoint's built-in speaker ids (``ryan``).  Only the engine says "speaker".
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

SAMPLE_RATE = 24000  # Hz
SAMPLE_WIDTH = 2  # bytes: 16-bit signed little-endian
CHANNELS = 1
SAMPLES_PER_FRAME = 1920  # one frame of 16 codes = 80 ms of audio
BYTES_PER_SECOND = SAMPLE_RATE * SAMPLE_WIDTH * CHANNELS

# checkpoint kinds (config.json `tts_model_type`)
CUSTOM_VOICE, VOICE_DESIGN, BASE = "custom_voice", "voice_design", "base"
MODEL_TYPES = (CUSTOM_VOICE, VOICE_DESIGN, BASE)
AUTO = "auto"  # language: let the model decide from the text
# --dtype: precision of generation (talker and code predictor; engine/precision.py says what
# each means on each CPU): int8 = int8 weights, the fastest int8 kernel of this CPU (x86:
# fbgemm); int8-weight-only = activations kept floating point (outlier-safe); int4 = the code
# predictor in 4 bits, the talker int8; int4-all = both in 4 bits
DTYPES = ("auto", "float32", "bfloat16", "int8", "int8-weight-only", "int4", "int4-all")

MIN_REFERENCE_SECONDS = 1.0  # a cloned voice's recording: shorter says too little
DEFAULT_MAX_REFERENCE_SECONDS = 10.0  # at most this much of it is used (--max-reference-seconds)


class EngineInputError(ValueError):
    """The request cannot be spoken as asked (a clear message for the client)."""


class EngineLoadError(RuntimeError):
    """The model could not be found, downloaded or loaded."""


@dataclass
class StreamStats:
    """Filled in by `Engine.stream` while it runs (frames so far) and when it ends."""

    frames: int = 0
    hit_frame_cap: bool = False
    frame_cap: int = 0
    first_audio_seconds: float | None = None
    total_seconds: float = 0.0
    audio_seconds: float = 0.0


@dataclass(frozen=True)
class CloneSource:
    """What a cloned voice is made of: a recording and, for in-context cloning, its text."""

    name: str
    reference: Path
    transcript: str | None  # None: from the speaker embedding alone (x-vector only)


class Engine(Protocol):
    """One loaded checkpoint.  Not thread-safe: one call at a time, from one thread."""

    model_type: str  # CUSTOM_VOICE, VOICE_DESIGN or BASE
    size: str  # config.json `tts_model_size` ("0b6", "1b7"), "" if unknown
    speakers: list[str]  # built-in speaker ids (CustomVoice only)
    languages: list[str]  # model language names ("english", ...)
    honours_instruct: bool  # False: style instructions are ignored (0.6B CustomVoice)

    def stream(self, text: str, *, speaker: str | None = None, language: str = AUTO,
               instruct: str | None = None, clone: Any = None,
               cancel: threading.Event | None = None, stats: StreamStats | None = None,
               max_frames: int | None = None) -> Iterator[bytes]:
        """Speak one text segment: PCM chunks (whole frames) as they are decoded.  Raises
        EngineInputError before generating anything if the request cannot be spoken."""
        ...

    def clone_prompt(self, source: CloneSource) -> Any:
        """A cloned voice ready to pass as `stream(clone=...)` (computed or from the disk
        cache); ValueError if the recording cannot be used."""
        ...

    def warmup(self, clone: Any = None) -> None:
        """One short synthesis, so the first request does not pay for lazy set-up."""
        ...


# (model as configured, its local checkpoint folder) -> a loaded Engine
EngineFactory = Callable[[str, Path], Engine]
