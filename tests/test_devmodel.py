"""The random checkpoints of wyoming_qwen3_tts.dev.checkpoints, run by the qwen-tts library."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from wyoming_qwen3_tts.dev import checkpoints as devmodel
from wyoming_qwen3_tts.engine.qwen_import import import_qwen_tts

GREEDY = dict(do_sample=False, subtalker_dosample=False)
FRAME = 1920
LANGUAGE_SAMPLES = {
    "English": "Hello world, it's 21 °C today.",
    "German": "Grüß Gott! Die Tür ist zu.",
    "French": "Où est la bibliothèque ? Déjà vu.",
    "Spanish": "¿Qué tal? Mañana será otro día.",
    "Italian": "Però è già ora di cena.",
    "Portuguese": "Não sei, talvez amanhã à noite.",
    "Russian": "Съешь же ещё этих мягких булок.",
    "Chinese": "我能吞下玻璃而不伤身体。",
    "Japanese": "私はガラスを食べられます。",
    "Korean": "나는 유리를 먹을 수 있어요.",
}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # The tiny models do microseconds of work per op: on a busy 2-core machine, handing each op
    # to two threads costs far more than it saves (10x slower measured).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def load(folder):
    return import_qwen_tts().Qwen3TTSModel.from_pretrained(str(folder))


def reference_clip(seconds: float = 3.0) -> np.ndarray:
    """A harmonic tone with some noise, at 24 kHz, standing in for a recorded voice."""
    t = np.arange(int(seconds * 24000)) / 24000
    tone = sum(0.3 / k * np.sin(2 * np.pi * 150 * k * t) for k in range(1, 6))
    noise = 0.02 * np.random.default_rng(0).standard_normal(t.size)
    return (tone * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)) + noise).astype(np.float32)


def assert_audio(wavs, sr, frames=None):
    assert sr == 24000 and len(wavs) == 1
    wav = wavs[0]
    assert wav.dtype == np.float32 and np.isfinite(wav).all()
    assert len(wav) > 0
    if frames is not None:
        assert len(wav) == frames * FRAME
    rms = float(np.sqrt(np.mean(wav**2)))
    assert 0.02 < rms < 0.6, rms  # clearly audible, not a clipped square wave
    return wav


def test_custom_voice(tiny_custom_voice):
    model = load(tiny_custom_voice)
    config = json.loads((tiny_custom_voice / "config.json").read_text())
    assert config["tts_model_type"] == "custom_voice"
    assert set(model.get_supported_speakers()) == set(devmodel.SPEAKER_IDS)
    assert set(model.get_supported_languages()) == {"auto", *devmodel.LANGUAGE_IDS}

    def say(**kwargs):
        return model.generate_custom_voice(
            "Hello world, this is a test.",
            language="English",
            max_new_tokens=20,
            **GREEDY,
            **kwargs,
        )

    # The library returns max_new_tokens - 1 frames: the last step's residual codes are never
    # predicted.  The random model never emits EOS, so the length is exact.
    wav = assert_audio(*say(speaker="Ryan"), frames=19)
    np.testing.assert_array_equal(wav, say(speaker="Ryan")[0][0])  # greedy is deterministic
    # A miniature of the 1.7B models: instruct is used (the library drops it for "0b6").
    assert not np.array_equal(wav, say(speaker="Ryan", instruct="Very happy.")[0][0])
    # A dialect speaker speaking Chinese takes the dialect's language id.
    assert_audio(
        *model.generate_custom_voice(
            "你好，世界。", speaker="Eric", language="Chinese", max_new_tokens=5, **GREEDY
        ),
        frames=4,
    )


def test_voice_design(tiny_voice_design):
    model = load(tiny_voice_design)
    assert list(model.get_supported_speakers()) == []
    wavs, sr = model.generate_voice_design(
        "Hello there.",
        instruct="A deep, calm male voice.",
        language="English",
        max_new_tokens=12,
        **GREEDY,
    )
    assert_audio(wavs, sr, frames=11)


def test_voice_clone(tiny_base):
    model = load(tiny_base)
    hidden = model.model.config.talker_config.hidden_size
    ref = reference_clip()
    icl, xvec = (
        model.create_voice_clone_prompt(ref_audio=(ref, 24000), ref_text="This is my voice.")[0],
        model.create_voice_clone_prompt(ref_audio=(ref, 24000), x_vector_only_mode=True)[0],
    )
    # The speech tokenizer's encoder: 16 codebooks at 12.5 frames/s, varied codes.
    assert tuple(icl.ref_code.shape) == (-(-len(ref) // FRAME), 16)
    assert int(icl.ref_code.min()) >= 0 and int(icl.ref_code.max()) < 2048
    assert len(torch.unique(icl.ref_code)) > 20
    assert icl.icl_mode and xvec.x_vector_only_mode and xvec.ref_code is None
    assert tuple(icl.ref_spk_embedding.shape) == (hidden,)
    assert torch.isfinite(icl.ref_spk_embedding).all()

    for prompt in (icl, xvec):
        wavs, sr = model.generate_voice_clone(
            "Hello there, cloned voice.",
            language="English",
            voice_clone_prompt=[prompt],
            max_new_tokens=12,
            **GREEDY,
        )
        # In ICL mode the reference part is cut off proportionally (not always frame-exact).
        wav = assert_audio(wavs, sr)
        assert abs(len(wav) - 11 * FRAME) <= 1


def test_text_tokenizer(tiny_custom_voice):
    model = load(tiny_custom_voice)
    tokenizer = model.processor.tokenizer
    config = model.model.config

    def ids(text):
        return model._tokenize_texts([text])[0][0].tolist()

    # The ids config.json refers to are those of the tokenizer's special tokens.
    for token, key in [
        ("<|im_start|>", "im_start_token_id"),
        ("<|im_end|>", "im_end_token_id"),
        ("<tts_pad>", "tts_pad_token_id"),
        ("<tts_text_bos>", "tts_bos_token_id"),
        ("<tts_text_eod>", "tts_eos_token_id"),
    ]:
        assert ids(token) == [getattr(config, key)]
        assert ids(token)[0] < config.talker_config.text_vocab_size
    assert ids("assistant") == [config.assistant_token_id]

    # The library cuts prompts by position: role = 3 tokens, then the text, then 5 tokens.
    for language, text in LANGUAGE_SAMPLES.items():
        prompt = ids(model._build_assistant_text(text))
        assert prompt[:3] == ids("<|im_start|>assistant\n"), language
        assert len(ids("<|im_start|>assistant\n")) == 3
        assert prompt[-5:] == ids("<|im_end|>\n<|im_start|>assistant\n")
        assert tokenizer.decode(prompt[3:-5]) == text, language


def test_cli(tmp_path):
    out = tmp_path / "cli-model"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "wyoming_qwen3_tts.dev.checkpoints",
            str(out),
            "--type",
            "voice_design",
            "--size",
            "tiny",
            "--seed",
            "3",
        ],
        check=True,
        capture_output=True,
    )
    files = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert files == {
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "preprocessor_config.json",
        "vocab.json",
        "merges.txt",
        "tokenizer.json",
        "tokenizer_config.json",
        "speech_tokenizer/config.json",
        "speech_tokenizer/model.safetensors",
        "speech_tokenizer/preprocessor_config.json",
    }
    assert sum((out / f).stat().st_size for f in files) < 20e6
    assert json.loads((out / "config.json").read_text())["tts_model_type"] == "voice_design"
    assert json.loads((out / "generation_config.json").read_text()) == devmodel.GENERATION_CONFIG


def test_rebuild_replaces_cleanly_and_seed_decides(tmp_path):
    out = tmp_path / "m"

    def weights():
        return (out / "model.safetensors").read_bytes()

    devmodel.build_checkpoint(out, "custom_voice", "tiny", seed=1)
    first = weights()
    devmodel.build_checkpoint(out, "custom_voice", "tiny", seed=2)
    assert weights() != first
    devmodel.build_checkpoint(out, "custom_voice", "tiny", seed=1)
    assert weights() == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no temporary folders left

    repo = devmodel.REPO
    with pytest.raises(ValueError, match=".cache"):
        devmodel.build_checkpoint(repo / "tests" / "stray-checkpoint")
    assert not (repo / "tests" / "stray-checkpoint").exists()


@pytest.mark.parametrize("size", ["0.6b", "1.7b"])
def test_full_size_configs_have_the_published_geometry(size):
    big = size == "1.7b"
    config, speech = devmodel.make_config("custom_voice", size)
    assert config.tts_model_size == ("1b7" if big else "0b6")
    talker = config.talker_config
    assert (talker.hidden_size, talker.intermediate_size) == ((2048, 6144) if big else (1024, 3072))
    assert (
        talker.num_hidden_layers,
        talker.num_attention_heads,
        talker.num_key_value_heads,
        talker.head_dim,
    ) == (28, 16, 8, 128)
    assert talker.rope_scaling["mrope_section"] == [24, 20, 20]
    assert (talker.vocab_size, talker.num_code_groups) == (3072, 16)
    assert (talker.text_vocab_size, talker.text_hidden_size) == (151936, 2048)
    predictor = talker.code_predictor_config
    assert (
        predictor.hidden_size,
        predictor.intermediate_size,
        predictor.num_hidden_layers,
        predictor.num_attention_heads,
        predictor.num_key_value_heads,
        predictor.head_dim,
        predictor.vocab_size,
    ) == (1024, 3072, 5, 16, 8, 128, 2048)
    # Qwen's own special token ids, and the published codec, language and speaker ids.
    assert (
        config.im_start_token_id,
        config.tts_pad_token_id,
        config.tts_bos_token_id,
        config.tts_eos_token_id,
    ) == (151644, 151671, 151672, 151673)
    assert talker.codec_eos_token_id == 2150 and talker.codec_pad_id == 2148
    assert talker.spk_id["ryan"] == 3061 and talker.spk_is_dialect["eric"] == "sichuan_dialect"
    assert talker.codec_language_id["beijing_dialect"] == 2074
    decoder = speech.decoder_config
    assert (
        decoder.hidden_size,
        decoder.num_hidden_layers,
        decoder.latent_dim,
        decoder.decoder_dim,
        decoder.codebook_dim,
        decoder.sliding_window,
    ) == (512, 8, 1024, 1536, 512, 72)
    assert speech.encoder_config.hidden_size == 512 and speech.encoder_config.frame_rate == 12.5

    # Parameter counts of the models built from them (on the meta device: no memory used).
    import_qwen_tts()
    from qwen_tts.core.models import Qwen3TTSForConditionalGeneration
    from qwen_tts.core.tokenizer_12hz.modeling_qwen3_tts_tokenizer_v2 import (
        Qwen3TTSTokenizerV2Model,
    )

    with torch.device("meta"):
        main = Qwen3TTSForConditionalGeneration(config)
        codec = Qwen3TTSTokenizerV2Model(speech)
    count = sum(t.numel() for t in main.state_dict().values())
    assert count == (1_916_676_352 if big else 905_788_672)  # as published: 0.6B = 1.81 GB bf16
    assert sum(t.numel() for t in codec.state_dict().values()) == 170_557_441  # 682 MB fp32


@pytest.mark.parametrize("model_type", ["voice_design", "base"])
def test_only_custom_voice_has_speakers_and_only_base_a_speaker_encoder(model_type):
    for size in devmodel.SIZES:
        config, _ = devmodel.make_config(model_type, size)
        talker = config.talker_config
        assert talker.spk_id == {} and talker.spk_is_dialect == {}
        assert set(talker.codec_language_id) == set(devmodel.LANGUAGE_IDS)  # no dialects
        written, _ = devmodel.config_dicts(model_type, size)
        assert ("speaker_encoder_config" in written) == (model_type == "base")
        if model_type == "base":  # its embedding is a talker input: talker width
            assert config.speaker_encoder_config.enc_dim == talker.hidden_size
            assert "model_type" not in written["speaker_encoder_config"]


@pytest.mark.parametrize("size", ["tiny", "0.6b"])
def test_tokenizer_files(size, tmp_path):
    from transformers import Qwen2Tokenizer, Qwen2TokenizerFast

    devmodel.write_text_tokenizer(tmp_path, size)
    fast = Qwen2TokenizerFast.from_pretrained(tmp_path)
    first = 151643 if size == "0.6b" else 1024  # Qwen's ids in full-size checkpoints
    for i, (content, special) in enumerate(devmodel.ADDED_TOKENS):
        assert (
            fast.convert_tokens_to_ids(content)
            == first + i
            == devmodel.added_token_id(size, content)
        )
        assert fast.added_tokens_decoder[first + i].special == special
    if size == "tiny":  # vocab.json + merges.txt (the slow tokenizer) agree with tokenizer.json
        slow = Qwen2Tokenizer.from_pretrained(tmp_path)
        for text in LANGUAGE_SAMPLES.values():
            text = f"<|im_start|>assistant\n{text}<|im_end|>\n"
            assert slow(text)["input_ids"] == fast(text)["input_ids"]
