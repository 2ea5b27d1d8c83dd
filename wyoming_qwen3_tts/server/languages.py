"""Language names of the model <-> BCP-47 codes, and offline language detection per sentence.

The model names its languages in lowercase English ("english", "german", ...).  Wyoming and
Home Assistant speak BCP-47 ("en-US", "de-DE").

One primary code per language is advertised.  Home Assistant files every voice under each of
its codes and matches a pipeline language against them with `homeassistant.util.language.
matches`, which accepts the same language with another region (score 0: "en-GB" and "en"
find "en-US") and only prefers an exact region.  Listing "en-GB", "en-AU", ... as well would
only repeat every voice in each of those language menus.  The region picked is the one with
the most speakers where the model gives no hint of a variety: pt-BR (Brazil has ~20x the
speakers of Portugal), es-ES and zh-CN (Mandarin, simplified script, which is what the
Chinese speakers are).

Detection uses py3langid (a naive Bayes model over byte n-grams, kept offline in the wheel)
restricted to the model's languages, with normalized probabilities.  Measured in this
project's sandbox (Intel Xeon, 2 vCPUs): 16 us for a 27-character sentence, 23 us for an
80-character one, i.e. nothing next to one 80 ms frame of synthesis; loading the model once
takes about 0.6 s (done while the TTS model loads).  Very short texts ("OK.", "Hallo!") get
low confidence; below MIN_CONFIDENCE the caller keeps the previous sentence's language.
"""

from __future__ import annotations

import re
import threading

# model language name -> (advertised BCP-47 code, ISO 639-1 code)
LANGUAGES: dict[str, tuple[str, str]] = {
    "chinese": ("zh-CN", "zh"),
    "english": ("en-US", "en"),
    "german": ("de-DE", "de"),
    "italian": ("it-IT", "it"),
    "portuguese": ("pt-BR", "pt"),
    "spanish": ("es-ES", "es"),
    "japanese": ("ja-JP", "ja"),
    "korean": ("ko-KR", "ko"),
    "french": ("fr-FR", "fr"),
    "russian": ("ru-RU", "ru"),
}

AUTO = "auto"

# Below this normalized probability a detection is a guess (measured: full sentences score
# > 0.85; "Obrigado." 0.50, "Done." 0.37, "OK." 0.10).
MIN_CONFIDENCE = 0.5

# ISO 639-2/3 codes (and a few common aliases) that a client may send instead of 639-1.
_ALIASES = {
    "zho": "zh", "chi": "zh", "cmn": "zh", "yue": "zh", "wuu": "zh",
    "eng": "en", "deu": "de", "ger": "de", "ita": "it", "por": "pt", "spa": "es",
    "jpn": "ja", "kor": "ko", "fra": "fr", "fre": "fr", "rus": "ru",
}
_BY_ISO = {iso: name for name, (_code, iso) in LANGUAGES.items()}
_SEPARATOR = re.compile(r"[-_]")


def bcp47(language: str) -> str:
    """The advertised BCP-47 code of a model language name ("english" -> "en-US")."""
    return LANGUAGES[language][0]


def codes_for(languages: list[str]) -> list[str]:
    """BCP-47 codes of the model languages we know, in the model's order."""
    return [LANGUAGES[name][0] for name in languages if name in LANGUAGES]


def to_model_language(value: str | None) -> str | None:
    """Map what a client or the command line says to a model language name.

    Accepts model names in any case ("English"), BCP-47 / POSIX codes with any region or
    script ("en", "en-GB", "pt_PT", "zh-Hant") and ISO 639-2/3 codes ("deu"); "auto" stays
    "auto".  Returns None for anything else.
    """
    if value is None:
        return None
    text = value.strip().lower()
    if not text:
        return None
    if text == AUTO or text in LANGUAGES:
        return text
    primary = _SEPARATOR.split(text, maxsplit=1)[0]
    primary = _ALIASES.get(primary, primary)
    return _BY_ISO.get(primary)


class LanguageDetector:
    """Guesses which of the model's languages a sentence is in."""

    def __init__(self, languages: list[str]) -> None:
        from py3langid.langid import MODEL_FILE, LanguageIdentifier

        self._codes = {LANGUAGES[name][1]: name for name in languages if name in LANGUAGES}
        if not self._codes:
            raise ValueError(f"no language this server can detect among {languages}")
        self._identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        self._identifier.set_languages(sorted(self._codes))
        self._lock = threading.Lock()  # the identifier swaps arrays in set_languages only

    def detect(self, text: str) -> tuple[str, float]:
        """Return (model language name, probability 0..1) for `text`."""
        with self._lock:
            code, probability = self._identifier.classify(text)
        return self._codes[code], probability

    def choose(self, text: str, previous: str | None) -> str:
        """The language to speak `text` in: the detected one if sure, else `previous`
        (the language of the sentence before in the same request), else "auto" (the model
        then decides from the text itself)."""
        language, probability = self.detect(text)
        if probability >= MIN_CONFIDENCE:
            return language
        return previous or AUTO
