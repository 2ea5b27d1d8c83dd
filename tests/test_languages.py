"""Language names and codes, offline detection, and sentence segmentation (no model needed)."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wyoming_qwen3_tts.server.languages import (
    AUTO,
    LANGUAGES,
    LanguageDetector,
    bcp47,
    codes_for,
    to_model_language,
)
from wyoming_qwen3_tts.server.segmentation import MAX_SEGMENT_CHARS, Segmenter, split_text


@pytest.mark.parametrize("value, expected", [
    ("english", "english"), ("English", "english"), ("en", "english"), ("en-GB", "english"),
    ("en_US", "english"), ("eng", "english"), ("de-AT", "german"), ("deu", "german"),
    ("pt-PT", "portuguese"), ("zh-Hant", "chinese"), ("cmn", "chinese"), ("ja", "japanese"),
    ("ko-KR", "korean"), ("fr-CA", "french"), ("ru", "russian"), ("es-419", "spanish"),
    ("it", "italian"), ("auto", AUTO), ("AUTO", AUTO),
    ("nl", None), ("xx-YY", None), ("", None), (None, None),
])
def test_to_model_language(value, expected):
    assert to_model_language(value) == expected


def test_one_bcp47_code_per_model_language():
    codes = codes_for(list(LANGUAGES))
    assert codes == ["zh-CN", "en-US", "de-DE", "it-IT", "pt-BR", "es-ES", "ja-JP", "ko-KR",
                     "fr-FR", "ru-RU"]
    assert codes_for(["english", "beijing_dialect"]) == ["en-US"]
    for name in LANGUAGES:
        assert to_model_language(bcp47(name)) == name


SENTENCES = {
    "chinese": "厨房的灯已经打开了。",
    "english": "The kitchen lights are on now.",
    "german": "Das Licht in der Küche ist jetzt an.",
    "italian": "La luce in cucina è accesa.",
    "portuguese": "A luz da cozinha está acesa.",
    "spanish": "La luz de la cocina está encendida.",
    "japanese": "キッチンの電気をつけました。",
    "korean": "주방 불을 켰습니다.",
    "french": "La lumière de la cuisine est allumée.",
    "russian": "Свет на кухне включён.",
}


@pytest.fixture(scope="module")
def detector():
    return LanguageDetector(list(LANGUAGES))


def test_detects_each_model_language(detector):
    for language, sentence in SENTENCES.items():
        assert detector.detect(sentence)[0] == language, sentence


def test_unsure_detection_keeps_the_previous_language_or_lets_the_model_decide(detector):
    assert detector.detect("OK.")[1] < 0.5
    assert detector.choose("OK.", previous="german") == "german"
    assert detector.choose("OK.", previous=None) == AUTO
    assert detector.choose(SENTENCES["french"], previous="german") == "french"


def test_detection_is_restricted_to_the_model_languages():
    only_two = LanguageDetector(["english", "german"])
    assert only_two.detect(SENTENCES["italian"])[0] in ("english", "german")


def test_detection_costs_well_under_a_millisecond_per_sentence(detector):
    # Measured ~16-23 us per sentence (see languages.py); the bound leaves room for slow CI.
    sentences = list(SENTENCES.values()) * 50
    started = time.perf_counter()
    for sentence in sentences:
        detector.detect(sentence)
    assert (time.perf_counter() - started) / len(sentences) < 1e-3


def test_split_text_into_sentences():
    assert split_text("Hello there. How are you? I am fine!\n\nNo end mark") == [
        "Hello there.", "How are you?", "I am fine!", "No end mark"]
    assert split_text("厨房的灯已经打开了。客厅的灯也打开了。") == [
        "厨房的灯已经打开了。", "客厅的灯也打开了。"]
    assert split_text("  multiple\n lines   here ") == ["multiple lines here"]
    assert split_text("") == split_text("   ") == split_text("... **") == []


def test_very_long_sentences_are_cut_at_natural_places():
    long = "one item, " * 60 + "and the end."
    pieces = split_text(long)
    assert len(pieces) > 1
    assert all(len(p) <= MAX_SEGMENT_CHARS for p in pieces)
    assert " ".join(pieces) == " ".join(long.split())
    assert all(p.endswith(",") for p in pieces[:-1])
    unbroken = "x" * (2 * MAX_SEGMENT_CHARS + 5)
    assert "".join(split_text(unbroken)) == unbroken


TEXT = ("Good morning! The kitchen lights are on, and it is 21 degrees. Mr. Smith called "
        "at 7.30 today. Do you want music?\n\nHere is a list: eggs, milk. 好的。谢谢！ Done")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(TEXT)), max_size=40))
def test_streamed_deltas_split_anywhere_give_the_same_sentences(cuts):
    bounds = [0, *sorted(cuts), len(TEXT)]
    segmenter = Segmenter()
    streamed = []
    for start, end in zip(bounds, bounds[1:], strict=False):
        streamed += segmenter.add(TEXT[start:end])
    streamed += segmenter.finish()
    assert streamed == split_text(TEXT)
