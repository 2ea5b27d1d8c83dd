"""Pauses and volume: sample counts exact, gain linear below the knee, never wrapping around."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wyoming_qwen3_tts.server.audio_effects import (
    FULL_SCALE,
    KNEE,
    SAMPLE_RATE,
    SAMPLE_WIDTH,
    Gain,
    silence,
    silence_samples,
)


def pcm(*samples: int) -> bytes:
    return np.array(samples, dtype="<i2").tobytes()


def samples_of(data: bytes) -> list[int]:
    return np.frombuffer(data, dtype="<i2").tolist()


@pytest.mark.parametrize("seconds, samples", [
    (0, 0), (0.0, 0), (1, 24000), (0.2, 4800), (0.35, 8400), (0.5, 12000), (2.25, 54000),
    (1 / 24000, 1), (1.4 / 24000, 1), (1.6 / 24000, 2), (0.4 / 24000, 0), (1e-9, 0),
])
def test_silence_is_whole_samples_of_zeros(seconds, samples):
    data = silence(seconds)
    assert silence_samples(seconds) == samples
    assert len(data) == samples * SAMPLE_WIDTH
    assert data == bytes(len(data))


def test_silence_at_another_rate():
    assert len(silence(0.5, rate=16000)) == 8000 * SAMPLE_WIDTH
    assert SAMPLE_RATE == 24000


@pytest.mark.parametrize("bad", [-0.1, -1, math.nan, math.inf, -math.inf])
def test_silence_refuses_what_is_no_duration(bad):
    with pytest.raises(ValueError):
        silence(bad)


def test_unit_gain_returns_the_bytes_unchanged():
    data = pcm(0, 1, -1, 32767, -32768, 12345)
    assert Gain(1.0).process(data) == data
    assert Gain(1).process(b"") == b""


def test_gain_below_one_is_linear():
    gain = Gain(0.5)
    assert samples_of(gain.process(pcm(0, 2, -2, 1000, -1000, 32766, -32768))) == [
        0, 1, -1, 500, -500, 16383, -16384]
    assert samples_of(Gain(0).process(pcm(5, -5, 32767))) == [0, 0, 0]


def test_gain_above_one_is_linear_below_the_knee():
    knee = int(KNEE * FULL_SCALE)
    values = [0, 1, -1, 100, -100, 10000, -10000, knee // 2, -(knee // 2)]
    assert samples_of(Gain(2.0).process(pcm(*values))) == [2 * v for v in values]


def test_loud_samples_never_wrap_around_and_stay_in_order():
    ramp = np.arange(-32768, 32768, 7, dtype=np.int64)
    for factor in (1.5, 2.0, 4.0, 100.0):
        out = np.array(samples_of(Gain(factor).process(ramp.astype("<i2").tobytes())))
        assert len(out) == len(ramp)
        assert out.max() <= 32767 and out.min() >= -32768
        assert np.all(np.sign(out) == np.sign(ramp))  # no wrap: signs kept
        assert np.all(np.diff(out) >= 0)  # monotonic: a louder input is never quieter
    top = samples_of(Gain(2.0).process(pcm(32767, -32767)))
    assert 32000 < top[0] <= 32767 and top[1] == -top[0]


def test_the_knee_is_continuous():
    knee = KNEE * FULL_SCALE
    just_below = int(knee / 2)  # x2 lands just under the knee
    out = samples_of(Gain(2.0).process(pcm(just_below, just_below + 1, just_below + 2)))
    assert out[0] == 2 * just_below
    assert all(0 < b - a <= 2 for a, b in zip(out, out[1:], strict=False))


@pytest.mark.parametrize("bad", [-0.5, math.nan, math.inf])
def test_gain_refuses_a_bad_factor(bad):
    with pytest.raises(ValueError):
        Gain(bad)


def test_a_sample_cut_between_chunks_is_carried_over():
    data = pcm(1000, -2000, 3000)
    gain = Gain(2.0)
    out = gain.process(data[:3]) + gain.process(data[3:5]) + gain.process(data[5:])
    assert samples_of(out) == [2000, -4000, 6000]
    assert gain.flush() == b""
    gain.process(b"\x01")
    assert gain.flush() == b"\x01"
    assert gain.flush() == b""


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(-32768, 32767), max_size=400),
       st.lists(st.integers(0, 801), max_size=12),
       st.sampled_from([0.0, 0.3, 1.0, 1.7, 3.0]))
def test_chunking_never_changes_the_output_or_the_byte_count(values, cuts, factor):
    data = pcm(*values) if values else b""
    whole = Gain(factor).process(data)
    bounds = [0, *sorted(c for c in cuts if c <= len(data)), len(data)]
    gain = Gain(factor)
    pieces = b"".join(gain.process(data[a:b]) for a, b in zip(bounds, bounds[1:],
                                                               strict=False))
    pieces += gain.flush()
    assert pieces == whole
    assert len(pieces) == len(data)
