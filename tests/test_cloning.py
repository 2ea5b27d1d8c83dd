"""Cloned voices: reference preparation, greedy parity with the library's clone path, the cache."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import soundfile
import torch
from test_engine import GREEDY, load, our_codes

from wyoming_qwen3_tts.contract import CloneSource
from wyoming_qwen3_tts.engine.cloning import (
    PAD_SECONDS,
    SAMPLE_RATE,
    ClonePromptCache,
    ReferenceError,
    compute_clone_prompt,
    prepare_reference,
)
from wyoming_qwen3_tts.engine.engine import Engine

TRANSCRIPT = "This is my voice, recorded for a test."


def harmonic_clip(seconds: float, rate: int, f0: float = 140.0, channels: int = 1
                  ) -> np.ndarray:
    """A voice-like synthetic signal: a harmonic series with a slow pitch and level contour."""
    t = np.arange(int(seconds * rate)) / rate
    pitch = f0 * (1 + 0.1 * np.sin(2 * np.pi * 0.7 * t))
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    wave = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = 0.5 + 0.5 * np.abs(np.sin(2 * np.pi * 1.5 * t))
    mono = (0.2 * wave * envelope).astype(np.float32)
    return mono if channels == 1 else np.stack([mono] * channels, axis=1)


def write_clip(path, seconds: float, rate: int, **kwargs):
    soundfile.write(str(path), harmonic_clip(seconds, rate, **kwargs), rate)
    return path


@pytest.fixture(scope="module")
def base(tiny_base, tmp_path_factory) -> Engine:
    return load(tiny_base, tmp_path_factory, **GREEDY)


def test_reference_is_resampled_trimmed_and_padded(tmp_path):
    stereo = write_clip(tmp_path / "a.flac", 3.0, 44100, channels=2)
    wav = prepare_reference(stereo, max_seconds=10)
    assert wav.dtype == np.float32 and wav.ndim == 1
    assert len(wav) == pytest.approx((3.0 + PAD_SECONDS) * SAMPLE_RATE, abs=2)
    assert not wav[-int(PAD_SECONDS * SAMPLE_RATE):].any()  # silence at the end
    assert np.abs(wav[:SAMPLE_RATE]).max() > 0.1
    long = write_clip(tmp_path / "b.wav", 4.0, 16000)
    assert len(prepare_reference(long, max_seconds=2.5)) == (2.5 + PAD_SECONDS) * SAMPLE_RATE
    with pytest.raises(ReferenceError, match="at least"):
        prepare_reference(write_clip(tmp_path / "c.wav", 0.5, 16000))
    (tmp_path / "d.wav").write_bytes(b"RIFF but not really")
    with pytest.raises(ReferenceError, match="cannot read"):
        prepare_reference(tmp_path / "d.wav")


def library_clone_codes(engine: Engine, text: str, frames: int, wav: np.ndarray,
                        transcript: str | None, language: str = "english") -> torch.Tensor:
    """Codes of the library's own voice-clone path (create_voice_clone_prompt, then generate
    as generate_voice_clone calls it), greedy."""
    tts = engine.tts
    items = tts.create_voice_clone_prompt(ref_audio=(wav, SAMPLE_RATE), ref_text=transcript,
                                          x_vector_only_mode=transcript is None)
    prompt = tts._prompt_items_to_voice_clone_prompt(items)
    ref_ids = [tts._tokenize_texts([tts._build_ref_text(transcript)])[0]
               if transcript else None]
    kwargs = tts._merge_generate_kwargs(max_new_tokens=frames + 1, **GREEDY)
    codes, _ = tts.model.generate(
        input_ids=tts._tokenize_texts([tts._build_assistant_text(text)]), ref_ids=ref_ids,
        voice_clone_prompt=prompt, languages=[language], non_streaming_mode=False, **kwargs)
    return codes[0], items[0]


@pytest.mark.parametrize("transcript", [TRANSCRIPT, None], ids=["icl", "x-vector-only"])
def test_greedy_parity_with_the_library_clone_path(base: Engine, tmp_path, transcript):
    wav = prepare_reference(write_clip(tmp_path / "ref.wav", 2.5, 16000))
    ours = compute_clone_prompt(base.model, wav, transcript)
    lib, item = library_clone_codes(base, "Hello, how are you today?", 20, wav, transcript)
    assert torch.equal(ours.speaker_embedding, item.ref_spk_embedding)
    if transcript:
        assert ours.icl and torch.equal(ours.ref_codes, item.ref_code)
        assert ours.ref_codes.shape[1] == 16
    else:
        assert not ours.icl and ours.ref_codes is None
    got = our_codes(base, "Hello, how are you today?", 20, language="english", clone=ours)
    assert lib.shape == (20, 16)
    assert torch.equal(got, lib)


def test_cache_computes_once_and_follows_edits(base: Engine, tmp_path, tiny_base, caplog):
    caplog.set_level(logging.INFO)
    ref = write_clip(tmp_path / "reference.wav", 2.0, 22050)
    source = CloneSource("grandma", ref, TRANSCRIPT)
    cache_dir = tmp_path / "voice_cache"

    def computed() -> int:
        return caplog.text.count("Computed clone prompt for voice grandma")

    first = ClonePromptCache(cache_dir).get(source, base.model, tiny_base)
    assert computed() == 1 and len(list(cache_dir.glob("*.pt"))) == 1
    # another process (a restart): loaded from disk, equal
    again = ClonePromptCache(cache_dir).get(source, base.model, tiny_base)
    assert computed() == 1 and "Loaded cached clone prompt for voice grandma" in caplog.text
    assert torch.equal(first.speaker_embedding, again.speaker_embedding)
    assert torch.equal(first.ref_codes, again.ref_codes) and again.ref_text == TRANSCRIPT
    # an edited transcript, an edited recording, another maximum: computed again
    ClonePromptCache(cache_dir).get(CloneSource("grandma", ref, "Other words."), base.model,
                                    tiny_base)
    assert computed() == 2
    write_clip(ref, 2.0, 22050, f0=180.0)
    ClonePromptCache(cache_dir).get(source, base.model, tiny_base)
    ClonePromptCache(cache_dir, max_seconds=1.5).get(source, base.model, tiny_base)
    assert computed() == 4
    # a damaged cache file is recomputed, not fatal
    for path in cache_dir.glob("*.pt"):
        path.write_bytes(b"garbage")
    ClonePromptCache(cache_dir).get(source, base.model, tiny_base)
    assert computed() == 5 and "damaged clone cache" in caplog.text


@pytest.mark.parametrize("dtype", ["bfloat16", "int8"])
def test_clones_in_every_precision(tiny_base, tmp_path_factory, tmp_path, dtype):
    """The speaker encoder stays float32 whatever the talker's precision (a bfloat16 talker
    once made the library cast the mel frames to bfloat16 and the encoder fail)."""
    engine = load(tiny_base, tmp_path_factory, dtype=dtype)
    wav = prepare_reference(write_clip(tmp_path / "ref.wav", 2.0, 24000))
    prompt = compute_clone_prompt(engine.model, wav, TRANSCRIPT)
    assert prompt.speaker_embedding.dtype == torch.float32 and prompt.icl
    pcm = b"".join(engine.stream("Hello there.", clone=prompt, max_frames=3, seed=1))
    assert len(pcm) == 3 * 1920 * 2
