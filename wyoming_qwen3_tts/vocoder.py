"""Incremental vocoder: frames of codes in, PCM out, in chunks with left context.

The 12 Hz speech tokenizer's decoder is causal (causal convolutions, a causal sliding-window
transformer), so a chunk decoded together with the frames before it gives the same samples
as decoding everything at once, up to the part of the receptive field the left context cuts
off.  The library's own `chunked_decode` keeps 25 frames of left context; we do the same by
default and measure the difference in tests/test_engine.py.

Chunk sizes grow: the first chunk is small so the first audio leaves early, later ones are
larger because every call also re-decodes its left context (13-25 frames were the cheapest
per second of audio on the reference machine).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch


class StreamingVocoder:
    def __init__(self, decoder, dtype: torch.dtype = torch.float32,
                 schedule: Sequence[int] = (3, 6, 12, 24), left_context: int = 25,
                 context_codes: torch.Tensor | None = None) -> None:
        self.decoder = decoder  # Qwen3TTSTokenizerV2Decoder
        self.dtype = dtype
        self.samples_per_frame = int(decoder.total_upsample)
        self.schedule = list(schedule)
        self.left_context = left_context
        # frames already decoded that later chunks still need as context: [frames, 16]
        self._context = (context_codes[-left_context:].clone() if context_codes is not None
                         and left_context > 0 else torch.zeros(0, 16, dtype=torch.long))
        self._pending: list[torch.Tensor] = []
        self._chunks_done = 0

    def _chunk_size(self) -> int:
        return self.schedule[min(self._chunks_done, len(self.schedule) - 1)]

    @torch.inference_mode()
    def _decode(self) -> np.ndarray:
        new = torch.stack(self._pending)  # [n, 16]
        codes = torch.cat([self._context, new]) if len(self._context) else new
        wav = self.decoder(codes.T.unsqueeze(0).clamp(min=0))  # [1, 1, samples]
        wav = wav[0, 0, len(self._context) * self.samples_per_frame:].float().numpy()
        if self.left_context > 0:
            self._context = codes[-self.left_context:]
        self._pending = []
        self._chunks_done += 1
        return wav

    def push(self, frame: torch.Tensor) -> np.ndarray | None:
        """Add one frame [16]; returns float samples when a chunk is complete."""
        self._pending.append(frame)
        if len(self._pending) >= self._chunk_size():
            return self._decode()
        return None

    def flush(self) -> np.ndarray | None:
        """Decode what is left at the end of the utterance."""
        return self._decode() if self._pending else None


def to_pcm16(samples: np.ndarray) -> bytes:
    """Float samples in [-1, 1] to 16-bit little-endian PCM."""
    return (np.clip(samples, -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes()


def stream_pcm(frames: Iterator[torch.Tensor], vocoder: StreamingVocoder) -> Iterator[bytes]:
    for frame in frames:
        wav = vocoder.push(frame)
        if wav is not None and len(wav):
            yield to_pcm16(wav)
    wav = vocoder.flush()
    if wav is not None and len(wav):
        yield to_pcm16(wav)
