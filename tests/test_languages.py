"""Language names and codes, offline detection, and sentence segmentation (no model needed)."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wyoming_qwen3_tts.server.languages import (
    AUTO,
    LANGUAGES,
    REGIONS,
    SPEAKER_LANGUAGES,
    LanguageDetector,
    bcp47,
    codes_for,
    speaker_language,
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


# The regions Home Assistant users pick (issue 16); Home Assistant matches a TTS language
# exactly (see languages.py), so each must be advertised as written.
REQUIRED_REGIONS = {
    "english": ["en-US", "en-GB", "en-AU", "en-CA", "en-IE", "en-IN", "en-NZ"],
    "german": ["de-DE", "de-AT", "de-CH"],
    "french": ["fr-FR", "fr-CA", "fr-BE", "fr-CH"],
    "spanish": ["es-ES", "es-MX", "es-US", "es-AR"],
    "portuguese": ["pt-BR", "pt-PT"],
    "italian": ["it-IT", "it-CH"],
    "chinese": ["zh-CN", "zh-TW", "zh-HK"],
    "japanese": ["ja-JP"],
    "korean": ["ko-KR"],
    "russian": ["ru-RU"],
}

ALL_CODES = ["zh-CN", "zh-TW", "zh-HK", "zh-Hans", "zh-Hant", "zh",
             "en-US", "en-GB", "en-AU", "en-CA", "en-IE", "en-IN", "en-NZ", "en",
             "de-DE", "de-AT", "de-CH", "de",
             "it-IT", "it-CH", "it",
             "pt-BR", "pt-PT", "pt",
             "es-ES", "es-MX", "es-US", "es-AR", "es-419", "es",
             "ja-JP", "ja",
             "ko-KR", "ko",
             "fr-FR", "fr-CA", "fr-BE", "fr-CH", "fr",
             "ru-RU", "ru"]


def test_every_region_and_the_bare_code_are_advertised_in_the_model_order():
    codes = codes_for(list(LANGUAGES))
    assert codes == ALL_CODES
    assert len(set(codes)) == len(codes)
    for language, regions in REQUIRED_REGIONS.items():
        assert set(regions) <= set(codes_for([language])), language
        assert LANGUAGES[language][1] in codes_for([language])  # the bare code
    assert codes_for(["english", "beijing_dialect"]) == list(REGIONS["english"])
    assert codes_for(["german"]) == ["de-DE", "de-AT", "de-CH", "de"]
    assert codes_for([]) == []


def test_every_advertised_code_maps_back_to_its_language():
    for name in LANGUAGES:
        assert bcp47(name) == REGIONS[name][0]
        assert to_model_language(bcp47(name)) == name
        for code in codes_for([name]):
            assert to_model_language(code) == name, code
            assert to_model_language(code.lower()) == name, code
            assert to_model_language(code.replace("-", "_")) == name, code


def test_an_exact_match_finds_every_voice_for_every_region():
    # What Home Assistant's wyoming TTS entity does: a dict from each advertised code to
    # the voices listing it, looked up with the pipeline's (or tts.speak's) language as is.
    voices = {"Ryan": codes_for(list(LANGUAGES)), "Vivian": codes_for(list(LANGUAGES))}
    by_code: dict[str, list[str]] = {}
    for voice, codes in voices.items():
        for code in codes:
            by_code.setdefault(code, []).append(voice)
    for language, regions in REQUIRED_REGIONS.items():
        for code in [*regions, LANGUAGES[language][1]]:
            assert by_code.get(code) == ["Ryan", "Vivian"], code


@pytest.mark.parametrize("speaker, language", [
    ("Vivian", "chinese"), ("Serena", "chinese"), ("Uncle_Fu", "chinese"),
    ("Uncle Fu", "chinese"), ("uncle_fu", "chinese"), ("Dylan", "chinese"),
    ("Eric", "chinese"), ("Ryan", "english"), ("Aiden", "english"), ("Ono_Anna", "japanese"),
    ("ono anna", "japanese"), ("Sohee", "korean"), ("SOHEE", "korean"),
    ("Nobody", None), ("", None), (None, None),
])
def test_speaker_language(speaker, language):
    assert speaker_language(speaker) == language


def test_speaker_languages_are_model_languages():
    assert set(SPEAKER_LANGUAGES.values()) <= set(LANGUAGES)


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


@pytest.mark.parametrize("short", ["OK.", "Gern.", "Fertig.", "Merci.", "21,5 °C.", "10:45."])
def test_a_sentence_too_short_to_detect_takes_the_language_of_the_others(detector, short):
    assert detector.detect(short)[1] < 0.5
    # the sentence before in the same request or stream wins over the voice's language
    assert detector.choose(short, previous="german", fallback="english") == "german"
    assert detector.choose(short, "german") == "german"
    # the first sentence: the voice's own language
    assert detector.choose(short, previous=None, fallback="english") == "english"
    assert detector.choose(short, None, speaker_language("Vivian")) == "chinese"
    # "auto" only when nothing better is known (or what is known is no language here)
    assert detector.choose(short, previous=None, fallback=None) == AUTO
    assert detector.choose(short) == AUTO
    assert detector.choose(short, previous=AUTO, fallback=None) == AUTO
    assert detector.choose(short, previous="klingon", fallback="french") == "french"


def test_a_sentence_detected_with_confidence_keeps_its_own_language(detector):
    assert detector.choose(SENTENCES["french"], previous="german") == "french"
    assert detector.choose(SENTENCES["french"], previous="german", fallback="english") == "french"
    assert detector.choose(SENTENCES["korean"], previous=None, fallback="japanese") == "korean"


def test_a_stream_of_sentences_carries_its_language_over_the_short_ones(detector):
    # How the worker uses it: each confident sentence sets the language for the next ones.
    sentences = ["OK.", "Das Licht in der Küche ist jetzt an.", "Gern.", "21,5 °C."]
    previous, spoken = None, []
    for sentence in sentences:
        language = detector.choose(sentence, previous, fallback="english")
        if language != AUTO:
            previous = language
        spoken.append(language)
    assert spoken == ["english", "german", "german", "german"]


def test_fallback_outside_the_detectors_languages_is_ignored():
    # a checkpoint without Japanese: a Japanese voice's language is no fallback there
    european = LanguageDetector(["english", "german", "french", "spanish", "italian",
                                 "portuguese", "russian"])
    assert european.detect("OK.")[1] < 0.5
    assert european.choose("OK.", previous=None, fallback="japanese") == AUTO
    assert european.choose("OK.", previous=None, fallback="german") == "german"


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


def test_a_date_ordinal_does_not_end_a_sentence():
    text = "Heute ist der 1. Dezember. Am 24. ist Weihnachten. Ich habe 3."
    assert split_text(text) == ["Heute ist der 1. Dezember.", "Am 24. ist Weihnachten.",
                                "Ich habe 3."]
    segmenter, got = Segmenter(), []
    for delta in [text[i:i + 3] for i in range(0, len(text), 3)]:
        got += segmenter.add(delta)
    assert got + segmenter.finish() == split_text(text)
