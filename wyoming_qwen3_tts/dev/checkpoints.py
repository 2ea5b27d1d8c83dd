"""Build randomly initialised Qwen3-TTS 12 Hz checkpoints offline, for tests and speed measurements.

    python -m wyoming_qwen3_tts.dev.checkpoints OUT --type custom_voice|voice_design|base \\
        --size tiny|0.6b|1.7b [--seed 0]

The folder has the published layout (``config.json``, ``generation_config.json``,
``model.safetensors``, the text tokenizer files, ``preprocessor_config.json`` and
``speech_tokenizer/``) and loads with ``qwen_tts.Qwen3TTSModel.from_pretrained(folder)``.

* ``0.6b`` / ``1.7b`` have the published geometry (the config values are those of the
  published ``config.json`` files), so compute and memory cost are real; weights are saved in
  bfloat16 like the published ones (the speech tokenizer in float32, also like the published one).
  The audio is noise, of course.
* ``tiny`` is for tests: about 10 MB, built in under a second (plus imports), about a
  millisecond of model compute per forward step, and its speech tokenizer (encoder and decoder)
  produces audible, non-silent audio (RMS about 0.2).  It is a miniature of the 1.7B family:
  ``tts_model_size`` is ``"1b7"`` (the library drops ``instruct`` for ``"0b6"`` custom-voice
  models) and the code predictor is narrower than the talker, so the talker-to-predictor
  projection exists as in the 1.7B models.

What every size keeps: the codec vocabulary (3072) and codebooks (16 x 2048), every codec id,
language id (with the two Chinese dialects in custom-voice checkpoints), the nine speakers with
their codec ids (custom voice only, as published), 24 kHz audio and 1920 samples (80 ms) per
frame.

What differs from the published checkpoints, on purpose:

* The text tokenizer is a small byte-level BPE (Qwen2 pre-tokenizer, trained here on a few
  sentences in each of the ten languages), so texts take more tokens than with Qwen's real one.
  For 0.6b/1.7b the unused regular ids are filled with unreachable placeholder tokens so that
  the special tokens keep Qwen's ids (``<|im_start|>`` = 151644, ``<tts_pad>`` = 151671, ...).
  For ``tiny`` the special tokens follow a 1024-token vocabulary (``<|im_start|>`` = 1025,
  ``<tts_pad>`` = 1052, ...), the text embedding has 1088 rows, and ``config.json`` carries
  those ids: always read ids from the config, never hard-code Qwen's.
* The row of the codec head that scores ``codec_eos_token_id`` is zero, so a random model never
  chooses to stop: generation always runs to ``max_new_tokens`` (so lengths are deterministic;
  the library's ``generate_*`` return ``max_new_tokens - 1`` frames; always pass
  ``max_new_tokens``, the published default is 8192).

Checkpoints must not be written into the git tree outside ``.cache/`` (a ``config.json`` there
would be taken for a Home Assistant add-on): ``build_checkpoint`` refuses to.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import shutil
import struct
import sys
import tempfile
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..contract import SAMPLE_RATE, SAMPLES_PER_FRAME

BUILDER_VERSION = 2

REPO = Path(__file__).resolve().parents[2]  # the checkout (when run from one)
DEVMODELS = REPO / ".cache" / "devmodels"  # git-ignored: checkpoints never go elsewhere in it

MODEL_TYPES = ("custom_voice", "voice_design", "base")
SIZES = ("tiny", "0.6b", "1.7b")


# --- Ids of the published checkpoints (Qwen/Qwen3-TTS-12Hz-*/config.json) -------------------

CODEC_IDS = {
    "codec_bos_id": 2149,
    "codec_eos_token_id": 2150,
    "codec_think_id": 2154,
    "codec_nothink_id": 2155,
    "codec_pad_id": 2148,
    "codec_think_bos_id": 2156,
    "codec_think_eos_id": 2157,
}
LANGUAGE_IDS = {
    "chinese": 2055,
    "english": 2050,
    "german": 2053,
    "italian": 2070,
    "portuguese": 2071,
    "spanish": 2054,
    "japanese": 2058,
    "korean": 2064,
    "french": 2061,
    "russian": 2069,
}
# Only the custom-voice checkpoints list the dialects (their two dialect speakers use them).
DIALECT_IDS = {"beijing_dialect": 2074, "sichuan_dialect": 2062}
SPEAKER_IDS = {
    "serena": 3066,
    "vivian": 3065,
    "uncle_fu": 3010,
    "ryan": 3061,
    "aiden": 2861,
    "ono_anna": 2873,
    "sohee": 2864,
    "eric": 2875,
    "dylan": 2878,
}
SPEAKER_DIALECTS: dict[str, str | bool] = {
    "serena": False,
    "vivian": False,
    "uncle_fu": False,
    "ryan": False,
    "aiden": False,
    "ono_anna": False,
    "sohee": False,
    "eric": "sichuan_dialect",
    "dylan": "beijing_dialect",
}

# Qwen's added tokens in id order (the first has id 151643 in the published tokenizer), with
# their "special" flag as published.
ADDED_TOKENS: tuple[tuple[str, bool], ...] = (
    ("<|endoftext|>", True),
    ("<|im_start|>", True),
    ("<|im_end|>", True),
    ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True),
    ("<|box_start|>", True),
    ("<|box_end|>", True),
    ("<|quad_start|>", True),
    ("<|quad_end|>", True),
    ("<|vision_start|>", True),
    ("<|vision_end|>", True),
    ("<|vision_pad|>", True),
    ("<|image_pad|>", True),
    ("<|video_pad|>", True),
    ("<tool_call>", False),
    ("</tool_call>", False),
    ("<|fim_prefix|>", False),
    ("<|fim_middle|>", False),
    ("<|fim_suffix|>", False),
    ("<|fim_pad|>", False),
    ("<|repo_name|>", False),
    ("<|file_sep|>", False),
    ("<tool_response>", False),
    ("</tool_response>", False),
    ("<think>", False),
    ("</think>", False),
    ("<|audio_start|>", True),
    ("<|audio_end|>", True),
    ("<tts_pad>", True),
    ("<tts_text_bos>", True),
    ("<tts_text_eod>", True),
    ("<tts_text_bos_single>", True),
    ("<|audio_pad|>", True),
)
_ADDED_INDEX = {content: i for i, (content, _) in enumerate(ADDED_TOKENS)}

# Qwen2's pre-tokenizer split.  Note: transformers 4.57.3 replaces it, at load time, with its
# "fixed Mistral" split in tokenizers of more than 100000 tokens whose config.json says
# "transformers_version": "4.57.3" when loaded with fix_mistral_regex=True, as the library
# does.  That happens to the published checkpoints and to 0.6b/1.7b here, not to tiny.
_QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# Text vocabulary layout: (regular tokens, embedding rows).  Qwen's: 151643 regular tokens,
# then the added ones, and 151936 embedding rows.
_TEXT_LAYOUT = {"tiny": (1024, 1088), "0.6b": (151643, 151936), "1.7b": (151643, 151936)}

# A few sentences in each of the ten languages, to train the tiny BPE on.
_CORPUS = (
    "The quick brown fox jumps over the lazy dog. It's twenty-one degrees in the living room, "
    "and the front door is locked. Please remind me to water the plants tomorrow morning. "
    "The kitchen lights were turned off at 10:45 pm; the weather will be sunny and warm.",
    "Der schnelle braune Fuchs springt über den faulen Hund. Im Wohnzimmer ist es "
    "einundzwanzig Grad warm. Die Haustür ist abgeschlossen, und das Licht in der Küche ist "
    "aus. Bitte erinnere mich morgen früh daran, die Pflanzen zu gießen.",
    "Le renard brun rapide saute par-dessus le chien paresseux. Il fait vingt et un degrés "
    "dans le salon. La porte d'entrée est fermée à clé et la lumière de la cuisine est "
    "éteinte. Rappelle-moi d'arroser les plantes demain matin.",
    "El rápido zorro marrón salta sobre el perro perezoso. Hace veintiún grados en la sala "
    "de estar. La puerta principal está cerrada y la luz de la cocina está apagada. Por "
    "favor, recuérdame regar las plantas mañana por la mañana.",
    "La veloce volpe marrone salta sopra il cane pigro. In soggiorno ci sono ventuno gradi. "
    "La porta d'ingresso è chiusa a chiave e la luce della cucina è spenta. Ricordami di "
    "annaffiare le piante domani mattina.",
    "A rápida raposa marrom pula sobre o cão preguiçoso. Está fazendo vinte e um graus na "
    "sala de estar. A porta da frente está trancada e a luz da cozinha está apagada. Por "
    "favor, lembre-me de regar as plantas amanhã de manhã.",
    "Быстрая коричневая лиса перепрыгивает через ленивую собаку. В гостиной двадцать один "
    "градус. Входная дверь заперта, а свет на кухне выключен. Пожалуйста, напомни мне полить "
    "цветы завтра утром.",
    "敏捷的棕色狐狸跳过了懒狗。客厅里现在是二十一度。前门已经锁好了，厨房的灯也关了。"
    "请提醒我明天早上给植物浇水。今天天气晴朗，很暖和。",
    "素早い茶色の狐が怠け者の犬を飛び越えます。リビングの温度は二十一度です。玄関のドアは"
    "施錠されていて、台所の電気は消えています。明日の朝、植物に水をやるように教えてください。",
    "빠른 갈색 여우가 게으른 개를 뛰어넘습니다. 거실 온도는 이십일 도입니다. 현관문은 잠겨 "
    "있고 부엌 불은 꺼져 있습니다. 내일 아침에 식물에 물을 주라고 알려 주세요.",
    # The chat roles the library wraps texts in ("assistant" must be a single token).
    "assistant\nuser\nassistant\nuser\nassistant\nuser\nassistant\nuser\n",
    "Speak in a warm, calm and friendly voice. A deep male voice, slow and clear.",
)

# --- Geometry --------------------------------------------------------------------------------

# Published 0.6B talker; the 1.7B talker differs only in hidden_size and intermediate_size.
_TALKER_06B = {
    "hidden_size": 1024,
    "intermediate_size": 3072,
    "num_hidden_layers": 28,
    "num_attention_heads": 16,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "mrope_section": [24, 20, 20],
}
# Published code predictor (same in 0.6B and 1.7B).
_PREDICTOR_FULL = {
    "hidden_size": 1024,
    "intermediate_size": 3072,
    "num_hidden_layers": 5,
    "num_attention_heads": 16,
    "num_key_value_heads": 8,
    "head_dim": 128,
}
# Published speech tokenizer: decoder, and the Mimi encoder fields the published file sets.
_DECODER_FULL = {
    "latent_dim": 1024,
    "codebook_dim": 512,
    "decoder_dim": 1536,
    "hidden_size": 512,
    "intermediate_size": 1024,
    "head_dim": 64,
    "num_attention_heads": 16,
    "num_hidden_layers": 8,
    "num_key_value_heads": 16,
}
_ENCODER_FULL = {
    "codebook_dim": 256,
    "head_dim": 64,
    "hidden_size": 512,
    "intermediate_size": 2048,
    "num_attention_heads": 8,
    "num_filters": 64,
    "num_hidden_layers": 8,
    "num_key_value_heads": 8,
    "num_quantizers": 32,
    "upsample_groups": 512,
    "vector_quantization_hidden_dimension": 256,
}

_GEOMETRY: dict[str, dict[str, Any]] = {
    "tiny": {
        "tts_model_size": "1b7",
        "waveform_gain": 0.1,  # measured: RMS about 0.2
        "talker": {
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 16,
            "mrope_section": [4, 2, 2],  # sums to head_dim / 2, like [24, 20, 20] for 128
        },
        "text_hidden_size": 32,
        "predictor": {  # runs 15 times per frame: one layer keeps frames cheap
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "head_dim": 8,
        },
        "speaker_encoder": {
            "enc_channels": [32, 32, 32, 32, 96],
            "enc_attention_channels": 16,
            "enc_res2net_scale": 4,
            "enc_se_channels": 16,
        },
        "decoder": {
            "latent_dim": 32,
            "codebook_dim": 16,
            "decoder_dim": 32,
            "hidden_size": 32,
            "intermediate_size": 64,
            "head_dim": 8,
            "num_attention_heads": 4,
            "num_hidden_layers": 2,
            "num_key_value_heads": 4,
        },
        "encoder": {
            "codebook_dim": 8,
            "head_dim": 8,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_attention_heads": 4,
            "num_filters": 4,
            "num_hidden_layers": 1,
            "num_key_value_heads": 4,
            "num_quantizers": 16,
            "upsample_groups": 32,
            "vector_quantization_hidden_dimension": 8,
        },
    },
    "0.6b": {
        "tts_model_size": "0b6",
        "waveform_gain": 0.04,
        "talker": _TALKER_06B,
        "text_hidden_size": 2048,
        "predictor": _PREDICTOR_FULL,
        "speaker_encoder": {},  # library defaults = published
        "decoder": _DECODER_FULL,
        "encoder": _ENCODER_FULL,
    },
    "1.7b": {
        "tts_model_size": "1b7",
        "waveform_gain": 0.04,
        "talker": {**_TALKER_06B, "hidden_size": 2048, "intermediate_size": 6144},
        "text_hidden_size": 2048,
        "predictor": _PREDICTOR_FULL,
        "speaker_encoder": {},
        "decoder": _DECODER_FULL,
        "encoder": _ENCODER_FULL,
    },
}

# The sampling defaults the library reads from generation_config.json (published values).
GENERATION_CONFIG = {
    "do_sample": True,
    "repetition_penalty": 1.05,
    "temperature": 0.9,
    "top_p": 1.0,
    "top_k": 50,
    "subtalker_dosample": True,
    "subtalker_temperature": 0.9,
    "subtalker_top_p": 1.0,
    "subtalker_top_k": 50,
    "max_new_tokens": 8192,
}

# As in the published config.json files; transformers reads it (see _QWEN2_SPLIT).
_TRANSFORMERS_VERSION = "4.57.3"


def _check(model_type: str, size: str) -> None:
    if model_type not in MODEL_TYPES:
        raise ValueError(f"model_type must be one of {MODEL_TYPES}, not {model_type!r}")
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, not {size!r}")


def added_token_id(size: str, content: str) -> int:
    """The id a checkpoint of this size gives one of Qwen's added tokens (e.g. "<tts_pad>")."""
    return _TEXT_LAYOUT[size][0] + _ADDED_INDEX[content]


# --- Configs ---------------------------------------------------------------------------------


def config_dicts(model_type: str, size: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The JSON of ``config.json`` and ``speech_tokenizer/config.json``, published layout."""
    _check(model_type, size)
    geo = _GEOMETRY[size]
    talker = dict(geo["talker"])
    mrope_section = talker.pop("mrope_section")
    predictor = geo["predictor"]
    custom = model_type == "custom_voice"
    text_vocab_size = _TEXT_LAYOUT[size][1]

    config: dict[str, Any] = {
        "architectures": ["Qwen3TTSForConditionalGeneration"],
        # Published as 77091, the id of "assistant" in Qwen's vocabulary; here the id of that
        # token in the trained-here BPE (the library itself does not read it).
        "assistant_token_id": _bpe(_TEXT_LAYOUT[size][0])[0]["assistant"],
        "im_end_token_id": added_token_id(size, "<|im_end|>"),
        "im_start_token_id": added_token_id(size, "<|im_start|>"),
        "tts_bos_token_id": added_token_id(size, "<tts_text_bos>"),
        "tts_eos_token_id": added_token_id(size, "<tts_text_eod>"),
        "tts_pad_token_id": added_token_id(size, "<tts_pad>"),
        "model_type": "qwen3_tts",
        "tokenizer_type": "qwen3_tts_tokenizer_12hz",
        "tts_model_size": geo["tts_model_size"],
        "tts_model_type": model_type,
    }
    if model_type == "base":
        # Only the Base checkpoints carry the speaker encoder (ECAPA-TDNN) config.  Its output
        # is used as a talker input embedding, so enc_dim is the talker width.
        config["speaker_encoder_config"] = {
            **geo["speaker_encoder"],
            "enc_dim": talker["hidden_size"],
            "sample_rate": SAMPLE_RATE,
        }
    config["talker_config"] = {
        "attention_bias": False,
        "attention_dropout": 0,
        "code_predictor_config": {
            **predictor,
            "attention_bias": False,
            "attention_dropout": 0,
            "hidden_act": "silu",
            "initializer_range": 0.02,
            "layer_types": ["full_attention"] * predictor["num_hidden_layers"],
            "max_position_embeddings": 65536,
            "max_window_layers": 28,
            "model_type": "qwen3_tts_talker_code_predictor",
            "num_code_groups": 16,
            "rms_norm_eps": 1e-06,
            "rope_scaling": None,
            "rope_theta": 1000000,
            "sliding_window": None,
            "use_cache": True,
            "use_sliding_window": False,
            "vocab_size": 2048,
        },
        **CODEC_IDS,
        "codec_language_id": {**LANGUAGE_IDS, **(DIALECT_IDS if custom else {})},
        "spk_id": dict(SPEAKER_IDS) if custom else {},
        "spk_is_dialect": dict(SPEAKER_DIALECTS) if custom else {},
        **talker,
        "hidden_act": "silu",
        "initializer_range": 0.02,
        "max_position_embeddings": 32768,
        "model_type": "qwen3_tts_talker",
        "num_code_groups": 16,
        "position_id_per_seconds": 13,
        "rms_norm_eps": 1e-06,
        "rope_scaling": {
            "interleaved": True,
            "mrope_section": mrope_section,
            "rope_type": "default",
            "type": "default",
        },
        "rope_theta": 1000000,
        "sliding_window": None,
        "text_hidden_size": geo["text_hidden_size"],
        "text_vocab_size": text_vocab_size,
        "use_cache": True,
        "use_sliding_window": False,
        "vocab_size": 3072,
    }
    config["transformers_version"] = _TRANSFORMERS_VERSION

    speech = {
        "architectures": ["Qwen3TTSTokenizerV2Model"],
        "model_type": "qwen3_tts_tokenizer_12hz",
        "encoder_valid_num_quantizers": 16,
        "input_sample_rate": SAMPLE_RATE,
        "output_sample_rate": SAMPLE_RATE,
        "decode_upsample_rate": SAMPLES_PER_FRAME,
        "encode_downsample_rate": SAMPLES_PER_FRAME,
        "decoder_config": {
            **geo["decoder"],
            "attention_bias": False,
            "attention_dropout": 0.0,
            "codebook_size": 2048,
            "hidden_act": "silu",
            "layer_scale_initial_scale": 0.01,
            "max_position_embeddings": 8000,
            "num_quantizers": 16,
            "num_semantic_quantizers": 1,
            "rms_norm_eps": 1e-05,
            "rope_theta": 10000,
            "semantic_codebook_size": 4096,
            "sliding_window": 72,
            # 8*5*4*3 * 2*2 = 1920 samples per frame: the published upsampling, in every size.
            "upsample_rates": [8, 5, 4, 3],
            "upsampling_ratios": [2, 2],
            "vector_quantization_hidden_dimension": geo["decoder"]["codebook_dim"],
        },
        "encoder_config": {
            **geo["encoder"],
            "_frame_rate": 12.5,
            "attention_bias": False,
            "attention_dropout": 0.0,
            "audio_channels": 1,
            "codebook_size": 2048,
            "compress": 2,
            "dilation_growth_rate": 2,
            "dtype": "float32",
            "hidden_act": "gelu",
            "initializer_range": 0.02,
            "kernel_size": 7,
            "last_kernel_size": 3,
            "layer_scale_initial_scale": 0.01,
            "max_position_embeddings": 8000,
            "norm_eps": 1e-05,
            "normalize": False,
            "num_residual_layers": 1,
            "num_semantic_quantizers": 1,
            "pad_mode": "constant",
            "residual_kernel_size": 3,
            "rope_theta": 10000.0,
            "sampling_rate": SAMPLE_RATE,
            "sliding_window": 250,
            "trim_right_ratio": 1.0,
            "upsampling_ratios": [8, 6, 5, 4],  # 960 samples, then a stride-2 conv: 1920
            "use_cache": False,
            "use_causal_conv": True,
            "use_conv_shortcut": False,
            "use_streaming": False,
        },
        "transformers_version": _TRANSFORMERS_VERSION,
    }
    return config, speech


def _qwen_tts():
    from ..engine.qwen_import import import_qwen_tts

    return import_qwen_tts()


def _config_objects(config: dict[str, Any], speech: dict[str, Any]):
    _qwen_tts()
    from qwen_tts.core.models import Qwen3TTSConfig
    from qwen_tts.core.tokenizer_12hz.configuration_qwen3_tts_tokenizer_v2 import (
        Qwen3TTSTokenizerV2Config,
    )

    def kwargs(d: dict[str, Any]) -> dict[str, Any]:
        # What from_pretrained passes: everything but the class-level keys.
        return {k: v for k, v in d.items() if k not in ("architectures", "model_type")}

    return Qwen3TTSConfig(**kwargs(config)), Qwen3TTSTokenizerV2Config(**kwargs(speech))


def make_config(model_type: str = "custom_voice", size: str = "tiny"):
    """``(Qwen3TTSConfig, Qwen3TTSTokenizerV2Config)`` of a checkpoint, without building it."""
    return _config_objects(*config_dicts(model_type, size))


# --- Text tokenizer --------------------------------------------------------------------------


@functools.lru_cache(maxsize=2)
def _bpe(n_regular: int) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Train the small byte-level BPE; pad its vocabulary to ``n_regular`` ids with
    placeholder tokens no merge can produce (so the added tokens get the intended ids)."""
    from tokenizers import models, pre_tokenizers
    from tokenizers.trainers import BpeTrainer

    tok = _qwen2_pipeline(models.BPE())
    trainer = BpeTrainer(
        vocab_size=min(n_regular, 1024),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS, trainer=trainer)
    model = json.loads(tok.to_str())["model"]
    vocab: dict[str, int] = model["vocab"]
    merges: list[tuple[str, str]] = [
        (m.split(" ", 1)[0], m.split(" ", 1)[1]) if isinstance(m, str) else (m[0], m[1])
        for m in model["merges"]]
    # BPE only ever produces merge results: these placeholders never appear in encodings.
    for i in range(len(vocab), n_regular):
        vocab[f"<|unused_{i}|>"] = i
    assert sorted(vocab.values()) == list(range(n_regular))
    assert "assistant" in vocab  # the library cuts "<|im_start|>assistant\n" as 3 tokens
    return vocab, merges


def _qwen2_pipeline(model):
    """A tokenizer around ``model`` with the normalizer, pre-tokenizer and decoder of Qwen2's."""
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors

    tok = Tokenizer(model)
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(  # a Sequence: transformers may swap item 0
        [
            pre_tokenizers.Split(Regex(_QWEN2_SPLIT), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


def write_text_tokenizer(folder: str | Path, size: str) -> None:
    """Write the text tokenizer files (vocab.json, merges.txt, tokenizer.json,
    tokenizer_config.json) of a checkpoint of this size into ``folder``."""
    from tokenizers import AddedToken, models

    folder = Path(folder)
    n_regular = _TEXT_LAYOUT[size][0]
    vocab, merges = _bpe(n_regular)
    tok = _qwen2_pipeline(models.BPE(vocab=dict(vocab), merges=merges, byte_fallback=False))
    # Added in id order: each gets the next id after the regular vocabulary.
    tok.add_tokens(
        [
            AddedToken(content, special=special, normalized=False)
            for content, special in ADDED_TOKENS
        ]
    )
    for content, _ in ADDED_TOKENS:
        assert tok.token_to_id(content) == added_token_id(size, content), content
    tok.save(str(folder / "tokenizer.json"))

    # The slow-tokenizer files, as published (vocab.json without the added tokens).
    with open(folder / "vocab.json", "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(folder / "merges.txt", "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        f.writelines(f"{a} {b}\n" for a, b in merges)

    def entry(content: str, special: bool) -> dict[str, Any]:
        return {
            "content": content,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": special,
        }

    additional = (  # as published (without <|endoftext|> and <tts_text_eod>)
        "<|im_start|> <|im_end|> <|object_ref_start|> <|object_ref_end|> <|box_start|> "
        "<|box_end|> <|quad_start|> <|quad_end|> <|vision_start|> <|vision_end|> "
        "<|vision_pad|> <|image_pad|> <|video_pad|> <|audio_start|> <|audio_end|> "
        "<tts_pad> <tts_text_bos> <tts_text_bos_single> <|audio_pad|>"
    ).split()
    extra = {
        "image_token": "<|image_pad|>",
        "audio_token": "<|audio_pad|>",
        "video_token": "<|video_pad|>",
        "vision_bos_token": "<|vision_start|>",
        "vision_eos_token": "<|vision_end|>",
        "audio_bos_token": "<|audio_start|>",
        "audio_eos_token": "<|audio_end|>",
    }
    tokenizer_config = {
        "add_bos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": {
            str(added_token_id(size, c)): entry(c, s) for c, s in ADDED_TOKENS
        },
        "additional_special_tokens": additional,
        "extra_special_tokens": extra,
        "bos_token": None,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>",
        "errors": "replace",
        "model_max_length": 131072,
        "pad_token": "<|endoftext|>",
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
        **extra,
    }
    _write_json(folder / "tokenizer_config.json", tokenizer_config)


# --- Weights ---------------------------------------------------------------------------------

_CHUNK = 1 << 23  # elements generated at once: bounds memory for the big embeddings


def _tensor_specs(model, waveform_gain: float = 1.0) -> list[tuple[str, tuple, tuple]]:
    """``(name, shape, init)`` of every saved tensor of a model built on the meta device.

    The init rules follow the libraries' own initialisers, except that convolutions get a
    fan-in scaled normal and codebooks are random (with the library's N(0, 0.02) convolutions
    and all-zero codebooks the speech tokenizer outputs silence).  The codec decoder's last
    convolution (to one channel: the waveform) is scaled by ``waveform_gain``, so that the audio
    is loud but hardly clipped (the decoder clamps it to [-1, 1])."""
    from torch import nn

    specs = []
    for module_name, module in model.named_modules():
        tensors = list(module._parameters.items()) + [
            (n, b)
            for n, b in module._buffers.items()
            if n not in module._non_persistent_buffers_set
        ]
        for attr, tensor in tensors:
            if tensor is None:
                continue
            name = f"{module_name}.{attr}" if module_name else attr
            rule = _init_rule(module, attr, tensor, nn)
            if attr == "weight" and isinstance(module, nn.Conv1d) and tensor.shape[0] == 1:
                rule = ("normal", rule[1] * waveform_gain)
            specs.append((name, tuple(tensor.shape), rule))
    return specs


def _init_rule(module, attr: str, tensor, nn) -> tuple[Any, ...]:
    cls = type(module).__name__
    if attr == "bias":
        return ("const", 0.0)
    if isinstance(module, (nn.Linear, nn.Embedding)):
        return ("normal", 0.02)
    if isinstance(module, (nn.Conv1d, nn.ConvTranspose1d)):
        fan_in = tensor.shape[1] * math.prod(tensor.shape[2:])
        return ("normal", 1.0 / math.sqrt(fan_in))
    if "Norm" in cls and attr == "weight":  # RMSNorm, LayerNorm
        return ("const", 1.0)
    if cls.endswith("LayerScale"):
        return ("const", 0.01)  # layer_scale_initial_scale of both codec transformers
    if cls == "SnakeBeta":
        return ("const", 0.0)  # log-scale parameters: exp(0) = 1
    if cls.endswith("ConvNeXtBlock") and attr == "gamma":
        return ("const", 1e-6)
    if attr in ("embedding_sum", "embed_sum"):  # codebooks (decoder, Mimi encoder)
        return ("normal", 1.0)
    if attr in ("cluster_usage", "initialized"):
        return ("const", 1.0)
    raise RuntimeError(f"devmodel: no init rule for {cls}.{attr}")


def _tensor_chunks(name: str, shape, rule, dtype, seed: int) -> Iterator[Any]:
    """The tensor's values, generated in row chunks of at most _CHUNK elements."""
    import torch

    kind, value = rule
    rows = shape[0] if shape else 1
    row_size = math.prod(shape[1:]) if shape else 1
    step = max(1, _CHUNK // max(1, row_size))
    # One generator per tensor: values do not depend on the order tensors are written in.
    gen = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(name.encode()))
    for start in range(0, rows, step):
        n = min(step, rows - start)
        if kind == "normal":
            chunk = torch.randn(n * row_size, generator=gen).mul_(value)
        else:
            chunk = torch.full((n * row_size,), float(value))
        yield chunk.to(dtype)


def _write_safetensors(path: Path, specs, dtype_of, seed: int, fixups=None) -> None:
    """Stream random tensors into a safetensors file without holding them all in memory."""
    import torch

    names = {torch.float32: "F32", torch.bfloat16: "BF16"}
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape, _ in specs:
        dtype = dtype_of(name)
        nbytes = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
        header[name] = {
            "dtype": names[dtype],
            "shape": list(shape),
            "data_offsets": [offset, offset + nbytes],
        }
        offset += nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # keeps the tensor data 8-byte aligned
    fixups = fixups or {}
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for name, shape, rule in specs:
            chunks: Iterator[Any] = _tensor_chunks(name, shape, rule, dtype_of(name), seed)
            if name in fixups:  # small tensors only: edited whole
                chunks = iter([fixups[name](torch.cat(list(chunks)).view(shape)).reshape(-1)])
            for chunk in chunks:
                f.write(chunk.contiguous().view(torch.uint8).numpy().tobytes())


def _zero_eos_row(eos_id: int):
    def fix(weight):
        weight[eos_id] = 0  # its logit is then 0: below the best code, the model never stops
        return weight

    return fix


def _write_weights(folder: Path, size: str, config_obj, speech_obj, seed: int) -> None:
    import torch

    _qwen_tts()
    from qwen_tts.core.models import Qwen3TTSForConditionalGeneration
    from qwen_tts.core.tokenizer_12hz.modeling_qwen3_tts_tokenizer_v2 import (
        Qwen3TTSTokenizerV2Model,
    )

    with torch.device("meta"):  # shapes only: nothing allocated, no init work
        model = Qwen3TTSForConditionalGeneration(config_obj)
        speech = Qwen3TTSTokenizerV2Model(speech_obj)

    main_dtype = torch.float32 if size == "tiny" else torch.bfloat16
    eos = config_obj.talker_config.codec_eos_token_id
    _write_safetensors(
        folder / "model.safetensors",
        _tensor_specs(model),
        lambda name: main_dtype,
        seed,
        fixups={"talker.codec_head.weight": _zero_eos_row(eos)},
    )
    _write_safetensors(
        folder / "speech_tokenizer" / "model.safetensors",
        _tensor_specs(speech, _GEOMETRY[size]["waveform_gain"]),
        lambda name: torch.float32,
        seed + 1,
    )


# --- Folder ----------------------------------------------------------------------------------


def _write_json(path: Path, data: Any) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, ensure_ascii=False)
        f.write("\n")


def build_checkpoint(
    out_dir: str | Path, model_type: str = "custom_voice", size: str = "tiny", seed: int = 0
) -> Path:
    """Build a random checkpoint into ``out_dir`` (replacing it) and return its path.

    It is written to a temporary sibling folder first and renamed into place at the end, so an
    interrupted build never leaves a half-written ``out_dir``."""
    _check(model_type, size)
    out = Path(out_dir).absolute()
    if (REPO / ".git").exists() and out.resolve().is_relative_to(REPO):
        if not out.resolve().is_relative_to(REPO / ".cache"):
            # Its config.json would be taken for a Home Assistant add-on, and it is big.
            raise ValueError(f"checkpoints go under {REPO / '.cache'}, not {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.building-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        (tmp / "speech_tokenizer").mkdir(parents=True)
        config, speech = config_dicts(model_type, size)
        config_obj, speech_obj = _config_objects(config, speech)

        _write_json(tmp / "config.json", config)
        _write_json(tmp / "generation_config.json", GENERATION_CONFIG)
        _write_json(
            tmp / "preprocessor_config.json",
            {
                "padding_side": "left",
                "padding_value": 0.0,
                "processor_class": "Qwen3TTSProcessor",
                "return_attention_mask": True,
            },
        )
        write_text_tokenizer(tmp, size)
        _write_json(tmp / "speech_tokenizer" / "config.json", speech)
        _write_json(
            tmp / "speech_tokenizer" / "preprocessor_config.json",
            {
                "chunk_length_s": None,
                "feature_extractor_type": "EncodecFeatureExtractor",
                "feature_size": 1,
                "overlap": None,
                "padding_side": "right",
                "padding_value": 0.0,
                "return_attention_mask": True,
                "sampling_rate": SAMPLE_RATE,
            },
        )
        _write_weights(tmp, size, config_obj, speech_obj, seed)

        if out.exists():
            # Move the old folder aside first so `out` is never missing for long.
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def cached_checkpoint(model_type: str = "custom_voice", size: str = "tiny") -> Path:
    """A random checkpoint in ``.cache/devmodels/<size>-<type>-v<BUILDER_VERSION>/``, built the
    first time (tests, the soak and the benchmarks share them).

    It is built in a temporary folder and renamed into place, so that folder only ever exists
    complete; when two processes build at once, the first rename wins."""
    final = DEVMODELS / f"{size}-{model_type}-v{BUILDER_VERSION}"
    if not final.is_dir():
        DEVMODELS.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=DEVMODELS))
        try:
            built = build_checkpoint(tmp / "checkpoint", model_type, size)
            try:
                built.rename(final)
            except OSError:  # another process got there first
                if not final.is_dir():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def _folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m wyoming_qwen3_tts.dev.checkpoints",
        description="Build a randomly initialised Qwen3-TTS 12 Hz checkpoint, offline.",
    )
    parser.add_argument("out", help="output folder (replaced if it exists)")
    parser.add_argument("--type", dest="model_type", choices=MODEL_TYPES, default="custom_voice")
    parser.add_argument("--size", choices=SIZES, default="tiny")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    start = time.monotonic()
    out = build_checkpoint(args.out, args.model_type, args.size, args.seed)
    print(
        f"built {args.size} {args.model_type} checkpoint in {out} "
        f"({_folder_size(out) / 1e6:.1f} MB, {time.monotonic() - start:.1f} s)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
