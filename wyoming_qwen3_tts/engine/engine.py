"""The streaming engine: text segment in, 16-bit mono 24 kHz PCM chunks out as frames arrive.

    text -> prompt (prompt.py) -> frames of 16 codes (decoding.py) -> PCM (vocoder.py)

One Engine per loaded checkpoint; it implements contract.Engine.  It is not thread-safe: run
one `stream` at a time, in a worker thread (it blocks); cancel it from anywhere with a
`threading.Event`.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import torch

from ..contract import (
    BASE,
    CUSTOM_VOICE,
    DEFAULT_MAX_REFERENCE_SECONDS,
    VOICE_DESIGN,
    CloneSource,
    EngineInputError,
    EngineLoadError,
    StreamStats,
)
from . import faithfulness, kernels
from .cloning import ClonePromptCache
from .decoding import FrameGenerator, FrameStats, FusedStep, Sampling
from .loader import load_model, release_freed_memory, resolve_checkpoint
from .overlap import overlapped_pcm
from .precision import Precision, choose_precision, set_threads
from .prompt import ClonePrompt, PromptBuilder
from .quantize import ModelPlan
from .threads import ThreadGovernor
from .vocoder import DecoderState, StreamingVocoder

_LOGGER = logging.getLogger(__name__)

__all__ = ["Engine", "EngineInputError", "EngineLoadError", "StreamStats", "ClonePrompt"]


def text_weight(text: str) -> float:
    """How much speech a text holds, in 'Latin characters': CJK characters count ~3x."""
    return float(sum(3 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
                     for ch in text))


class Engine:
    # Frame cap: speech runs at ~0.8 frames per Latin character (~15 chars/s at 12.5 frames/s);
    # allow 2.5x that plus 2 s, so slow speakers finish and runaway generations stop early.
    frames_per_char = 2.0
    extra_frames = 25

    def __init__(self, tts, plan: ModelPlan, *, model_name: str, precision: Precision,
                 sampling: Sampling | None = None, folder: Path | None = None,
                 clone_cache: ClonePromptCache | None = None) -> None:
        self.tts = tts
        self.plan = plan  # the decoder stacks as quantize.prepare made them
        self.model = tts.model
        self.model_name = model_name
        self.folder = Path(folder) if folder is not None else None  # the checkpoint's
        self.precision = precision
        self.model_type: str = self.model.tts_model_type
        self.size: str = str(getattr(self.model, "tts_model_size", "") or "")
        self.clone_cache = clone_cache
        self.sampling = sampling or Sampling.from_generation_config(tts.generate_defaults)
        self.max_new_tokens = int((tts.generate_defaults or {}).get("max_new_tokens", 8192))
        tcfg = self.model.config.talker_config
        self.speakers: list[str] = list(tcfg.spk_id or {}) if self.model_type == CUSTOM_VOICE \
            else []
        self.languages: list[str] = [
            name for name in (tcfg.codec_language_id or {}) if "dialect" not in name
        ]
        self.prompts = PromptBuilder(self.model, tts.processor, precision.activations)
        # the fused kernels serve quantized stacks; float32 stays the library's exact arithmetic
        wants_kernels = any(FusedStep.supports(s) for s in (plan.talker, plan.predictor))
        self.generator = FrameGenerator(self.model, plan, self.sampling,
                                        kernels=kernels.load() if wants_kernels else None)
        decoder = self.model.speech_tokenizer.model.decoder
        self.decoder = decoder
        self._context_states: dict[int, tuple[torch.Tensor, DecoderState]] = {}
        self.samples_per_frame = int(decoder.total_upsample)
        self.sample_rate = int(self.model.speech_tokenizer.get_output_sample_rate())
        # the library leaves instructions out for the 0.6B built-in-voice checkpoints
        self.honours_instruct = not (self.model_type == CUSTOM_VOICE and self.size == "0b6")
        # torch threads follow the cores other processes leave free (threads.py)
        self.governor = ThreadGovernor(torch.get_num_threads())

    @classmethod
    def load(cls, model: str, *, data_dir: Path | str, local_files_only: bool = False,
             dtype: str = "auto", threads: int = 0, interop_threads: int = 0,
             sampling: Sampling | None = None,
             max_reference_seconds: float = DEFAULT_MAX_REFERENCE_SECONDS) -> Engine:
        """Load `model` (a checkpoint folder, or a repo id downloaded into data_dir/models);
        cloned voices' prompts are cached in data_dir/voice_cache."""
        set_threads(threads, interop_threads)
        precision = choose_precision(dtype)
        folder = resolve_checkpoint(model, Path(data_dir), local_files_only)
        tts, plan = load_model(folder, precision)
        # quantized: compared with float32 on this checkpoint the first time (then cached)
        plan = faithfulness.check(folder, tts.model, tts.processor, plan, precision,
                                  Path(data_dir))
        release_freed_memory()  # what the check's conversions freed
        cache = ClonePromptCache(Path(data_dir) / "voice_cache", max_reference_seconds)
        return cls(tts, plan, model_name=model, precision=precision, sampling=sampling,
                   folder=folder, clone_cache=cache)

    def clone_prompt(self, source: CloneSource) -> ClonePrompt:
        """A cloned voice's prompt (computed once, then from memory or the disk cache)."""
        if self.model_type != BASE:
            raise EngineInputError(f"a {self.model_type} checkpoint cannot clone voices; "
                                   "use a Base checkpoint")
        if self.clone_cache is None or self.folder is None:
            raise EngineLoadError("this engine was made without a clone prompt cache")
        return self.clone_cache.get(source, self.model, self.folder)

    # -- requests -------------------------------------------------------------------------
    def frame_cap(self, text: str) -> int:
        cap = math.ceil(self.frames_per_char * text_weight(text)) + self.extra_frames
        return min(cap, self.max_new_tokens)

    def _check(self, text: str, speaker: str | None, language: str, instruct: str | None,
               clone: ClonePrompt | None) -> tuple[str | None, str, str | None]:
        if not text or not text.strip():
            raise EngineInputError("empty text: nothing to speak")
        lang = (language or "auto").lower()
        if lang != "auto" and lang not in self.languages:
            raise EngineInputError(
                f"unknown language {language!r}; this model speaks: auto, "
                + ", ".join(self.languages)
            )
        if self.model_type == CUSTOM_VOICE:
            if clone is not None:
                raise EngineInputError("this is a built-in-voice (CustomVoice) model: it cannot "
                                       "clone voices; use a Base model")
            if not speaker:
                raise EngineInputError("a built-in voice model needs a speaker")
            match = {s.lower(): s for s in self.speakers}.get(speaker.lower())
            if match is None:
                raise EngineInputError(
                    f"unknown speaker {speaker!r}; this model has: {', '.join(self.speakers)}"
                )
            speaker = match
            if instruct and not self.honours_instruct:
                _LOGGER.debug("Instruction ignored: 0.6B CustomVoice models have no style control")
                instruct = None
        elif speaker:
            raise EngineInputError(
                f"speaker {speaker!r} asked of a {self.model_type} model, which has no built-in "
                "speakers"
            )
        if self.model_type == BASE and clone is None:
            raise EngineInputError("a voice-clone (Base) model needs a reference voice")
        if self.model_type == VOICE_DESIGN and clone is not None:
            raise EngineInputError("a VoiceDesign model cannot clone voices; use a Base model")
        return speaker, lang, instruct

    def frames(self, text: str, *, speaker: str | None = None, language: str = "auto",
               instruct: str | None = None, clone: ClonePrompt | None = None,
               max_frames: int | None = None, cancel: threading.Event | None = None,
               stats: FrameStats | None = None):
        """The frames (LongTensor [16]) of one text segment, and the prompt they came from."""
        speaker, lang, instruct = self._check(text, speaker, language, instruct, clone)
        prompt = self.prompts.build(
            text, language=lang, speaker=speaker, instruct=instruct, clone=clone,
            # the library's defaults: text in the prompt, except for cloned voices
            streaming_text=clone is not None,
        )
        cap = self.frame_cap(text) if max_frames is None else max_frames
        self.governor.update(force=True)
        return prompt, self._governed(self.generator.frames(prompt, cap, cancel, stats))

    def _governed(self, frames: Iterator[torch.Tensor]) -> Iterator[torch.Tensor]:
        """The frames, with the thread count re-chosen between them (every half second)."""
        try:
            for frame in frames:
                yield frame
                self.governor.update()
        finally:
            frames.close()  # type: ignore[attr-defined]

    def stream(self, text: str, *, speaker: str | None = None, language: str = "auto",
               instruct: str | None = None, clone: ClonePrompt | None = None,
               cancel: threading.Event | None = None, stats: StreamStats | None = None,
               max_frames: int | None = None, seed: int | None = None) -> Iterator[bytes]:
        """Speak one text segment: yields int16 LE mono PCM chunks as they are decoded.

        Every chunk holds whole frames (1920 samples each); `stats.frames` counts the frames
        generated so far while it runs.  `seed` makes sampling repeatable.  Raises
        EngineInputError for bad input before anything is generated.
        """
        self.generator.generator = None if seed is None else torch.Generator().manual_seed(seed)
        stats = stats if stats is not None else StreamStats()
        frame_stats = FrameStats()
        started = time.monotonic()
        prompt, frames = self.frames(text, speaker=speaker, language=language,
                                     instruct=instruct, clone=clone, max_frames=max_frames,
                                     cancel=cancel, stats=frame_stats)
        stats.frame_cap = self.frame_cap(text) if max_frames is None else max_frames
        return self._pcm(prompt, frames, frame_stats, stats, started, text,
                         warn_at_cap=max_frames is None, cancel=cancel)

    def _pcm(self, prompt, frames, frame_stats: FrameStats, stats: StreamStats,
             started: float, text: str, warn_at_cap: bool,
             cancel: threading.Event | None = None) -> Iterator[bytes]:
        vocoder = StreamingVocoder(self.decoder, state=self._vocoder_state(prompt.context_codes))
        samples = 0
        try:
            # in this thread, or (opt-in, overlap.py) generation on a thread of its own
            for pcm in overlapped_pcm(frames, vocoder, lambda: self.governor.current, cancel):
                stats.frames = frame_stats.frames  # frames generated so far
                if stats.first_audio_seconds is None:
                    stats.first_audio_seconds = time.monotonic() - started
                samples += len(pcm) // 2
                yield pcm
        finally:
            frames.close()
            stats.frames = frame_stats.frames
            stats.hit_frame_cap = frame_stats.hit_cap
            stats.total_seconds = time.monotonic() - started
            stats.audio_seconds = samples / self.sample_rate
            if frame_stats.hit_cap and warn_at_cap:
                _LOGGER.warning("Frame cap hit (%d frames) for a %d-character text: the model did "
                                "not stop by itself", stats.frames, len(text))

    def _vocoder_state(self, context: torch.Tensor | None) -> DecoderState | None:
        """The vocoder's state after a cloned voice's reference codes (the library decodes
        them before the new ones).  Decoding 10 s of reference costs seconds on a CPU, so it
        is done once per voice and each request goes on from a copy."""
        if context is None:
            return None
        key = id(context)
        cached = self._context_states.get(key)
        if cached is None or cached[0] is not context:
            state = DecoderState(self.decoder)
            state.decode(context)
            cached = (context, state)  # holding `context` keeps its id from being reused
            self._context_states[key] = cached
            while len(self._context_states) > 32:
                self._context_states.pop(next(iter(self._context_states)))
        return cached[1].copy()

    def warmup(self, clone: ClonePrompt | None = None) -> None:
        """One short synthesis, so the first real request does not pay for lazy set-up.  A
        Base checkpoint needs a cloned voice for it (none: nothing to do)."""
        if self.model_type == BASE and clone is None:
            return
        started = time.monotonic()
        speaker = self.speakers[0] if self.speakers else None
        instruct = "A calm voice." if self.model_type == VOICE_DESIGN else None
        with torch.inference_mode():
            for _ in self.stream("Hello.", speaker=speaker, language="english", max_frames=4,
                                 instruct=instruct, clone=clone):
                pass
        _LOGGER.info("Warm-up done in %.1f s", time.monotonic() - started)
