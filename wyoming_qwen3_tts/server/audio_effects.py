"""Pauses and volume for the audio stream (16-bit little-endian mono PCM at 24 kHz).

`silence(seconds)` is the pause put between the sentences of one answer; `Gain(factor)` scales
the samples chunk by chunk.  Both are pure (numpy only, no torch) and keep the sample count
exact: `silence` returns whole samples, `Gain` returns exactly as many bytes as it was given
(over the chunks and `flush()` together).

Clipping protection: samples scaled past full scale are bent by a static soft knee instead of
wrapping around (int16 overflow) or being hard-clipped.  Below KNEE (85 % of full scale) the
gain is exactly linear; above it the curve continues with slope 1 into a tanh that approaches
but never reaches full scale, so a peak pushed to 2x comes out as a rounded, not a squared-off,
waveform (hard clipping of speech adds harsh odd harmonics).  A look-ahead limiter would sound
cleaner still but needs a delay line (audio held back, against "without delaying the first
chunk") and state carried between chunks; this curve is per sample, so the output is the same
whatever the chunk boundaries are and costs no latency.  Factors <= 1 never reach full scale,
so they are linear throughout; a factor of exactly 1 returns the bytes unchanged.
"""

from __future__ import annotations

import math

import numpy as np

SAMPLE_RATE = 24000
SAMPLE_WIDTH = 2  # bytes, signed 16-bit little-endian
CHANNELS = 1
FULL_SCALE = 32767.0
KNEE = 0.85  # fraction of full scale where the soft knee starts

__all__ = ["CHANNELS", "FULL_SCALE", "KNEE", "SAMPLE_RATE", "SAMPLE_WIDTH", "Gain",
           "silence", "silence_samples"]


def silence_samples(seconds: float, rate: int = SAMPLE_RATE) -> int:
    """How many samples `seconds` of audio are at `rate`, rounded to the nearest whole one."""
    seconds = float(seconds)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"silence must be a finite number of seconds >= 0, not {seconds}")
    return round(seconds * rate)


def silence(seconds: float, rate: int = SAMPLE_RATE) -> bytes:
    """`seconds` of 16-bit mono PCM zeros at `rate` (whole samples; b"" for 0)."""
    return bytes(silence_samples(seconds, rate) * SAMPLE_WIDTH)


class Gain:
    """Multiplies 16-bit PCM samples by `factor`, chunk by chunk, with the soft knee above.

    `process(chunk)` (or calling the object) returns the scaled whole samples of what it was
    given; an odd trailing byte (a sample cut between two chunks) is kept for the next chunk,
    and `flush()` returns one left at the end unchanged.
    """

    def __init__(self, factor: float) -> None:
        factor = float(factor)
        if not math.isfinite(factor) or factor < 0:
            raise ValueError(f"volume factor must be a finite number >= 0, not {factor}")
        self.factor = factor
        self._carry = b""
        self._knee = KNEE * FULL_SCALE
        self._room = FULL_SCALE - self._knee

    def __call__(self, chunk: bytes) -> bytes:
        return self.process(chunk)

    def process(self, chunk: bytes) -> bytes:
        data = self._carry + bytes(chunk)
        whole = len(data) - len(data) % SAMPLE_WIDTH
        self._carry = data[whole:]
        if self.factor == 1.0:
            return data[:whole]
        samples = np.frombuffer(data, dtype="<i2", count=whole // SAMPLE_WIDTH)
        scaled = samples.astype(np.float64) * self.factor
        if self.factor > 1.0:
            magnitude = np.abs(scaled)
            over = magnitude > self._knee
            if over.any():
                bent = self._knee + self._room * np.tanh((magnitude[over] - self._knee)
                                                         / self._room)
                scaled[over] = np.copysign(bent, scaled[over])
        out = np.clip(np.rint(scaled), -32768, 32767).astype("<i2")
        return out.tobytes()

    def flush(self) -> bytes:
        """What is left of a sample cut short at the very end (b"" for whole samples)."""
        left, self._carry = self._carry, b""
        return left
