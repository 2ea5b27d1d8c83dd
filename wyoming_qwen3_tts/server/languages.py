"""Language names of the model <-> BCP-47 codes, and offline language detection per sentence.

The model names its languages in lowercase English ("english", "german", ...).  Wyoming and
Home Assistant speak BCP-47 ("en-US", "de-DE").

**Every regional code is advertised, and the bare code too.**  Read in Home Assistant core
(`homeassistant/components/wyoming/tts.py`, `homeassistant/components/tts/__init__.py`,
`homeassistant/util/language.py`): the Wyoming TTS entity files each voice under each code the
server lists, exactly as written (`async_get_supported_voices(language)` is a dict lookup), and
the TTS manager (`SpeechManager.process_options`) refuses any language that is not literally
in that list: `tts.speak` with `en-GB` against a server listing only `en-US` fails with
"Language 'en-GB' not supported"; other regions do NOT match.  The fuzzy
`homeassistant.util.language.matches` (same language, other or no region: score >= 0; exact
region best) is only used to *choose* a tag: which engines and tags the pipeline editor offers
for a pipeline language (websocket `tts/engine/list`), and the default pipeline's TTS language.
The chosen tag is then stored and used exactly.  So every region a user may name is listed:
the ones Home Assistant users pick (REGIONS) plus Home Assistant's own script/area tags
(`zh-Hans`, `zh-Hant`, `es-419`, which are UI languages of Home Assistant).  The bare code
("en") is listed as well: a pipeline set to "en" already finds the regional tags through
`matches`, but anything that passes Home Assistant's own language code on unchanged (its UI
languages are "en", "de", "fr", "it", "ja", "ko", "ru", "pt", "es", ...), e.g. `tts.speak` with
`language: de`, is matched exactly and needs it; and with a country outside the language's
regions (English spoken in Germany) current Home Assistant scores every regional tag 0 and the
bare tag 2, so the pick is deterministic.  The cost is one more entry in each language menu.
The first code of each language (`bcp47`) is the primary one: pt-BR (Brazil has ~20x the
speakers of Portugal), es-ES, zh-CN (Mandarin, simplified script, which is what the Chinese
speakers are).

Detection uses py3langid (a naive Bayes model over byte n-grams, kept offline in the wheel)
restricted to the model's languages, with normalized probabilities.  Measured in this
project's sandbox (Intel Xeon, 2 vCPUs): 16 us for a 27-character sentence, 23 us for an
80-character one, i.e. nothing next to one 80 ms frame of synthesis; loading the model once
takes about 0.6 s (done while the TTS model loads).  Very short texts ("OK.", "Gern.") and
texts without letters ("21,5 °C.") get low confidence; below MIN_CONFIDENCE
`LanguageDetector.choose` takes the language of the request's or stream's sentence before,
else the voice's own language (`speaker_language`), and says "auto" only when neither is known.
"""

from __future__ import annotations

import re
import threading

# model language name -> (primary BCP-47 code, ISO 639-1 code); REGIONS has every advertised one
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

# Every code advertised per language, the primary (`bcp47`) first: the regions Home
# Assistant users pick, Home Assistant's own script/area tags, then the bare code.
REGIONS: dict[str, tuple[str, ...]] = {
    "chinese": ("zh-CN", "zh-TW", "zh-HK", "zh-Hans", "zh-Hant", "zh"),
    "english": ("en-US", "en-GB", "en-AU", "en-CA", "en-IE", "en-IN", "en-NZ", "en"),
    "german": ("de-DE", "de-AT", "de-CH", "de"),
    "italian": ("it-IT", "it-CH", "it"),
    "portuguese": ("pt-BR", "pt-PT", "pt"),
    "spanish": ("es-ES", "es-MX", "es-US", "es-AR", "es-419", "es"),
    "japanese": ("ja-JP", "ja"),
    "korean": ("ko-KR", "ko"),
    "french": ("fr-FR", "fr-CA", "fr-BE", "fr-CH", "fr"),
    "russian": ("ru-RU", "ru"),
}

# The native language of Qwen's built-in CustomVoice speakers (model card; Dylan speaks the
# Beijing and Eric the Sichuan dialect, both Chinese to the model), keyed like the checkpoint's
# talker_config.spk_id.
SPEAKER_LANGUAGES: dict[str, str] = {
    "vivian": "chinese", "serena": "chinese", "uncle_fu": "chinese", "dylan": "chinese",
    "eric": "chinese", "ryan": "english", "aiden": "english", "ono_anna": "japanese",
    "sohee": "korean",
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
    """Every BCP-47 code to advertise for these model languages (see REGIONS), in the
    model's order; names we do not know are left out."""
    return [code for name in languages if name in REGIONS for code in REGIONS[name]]


def speaker_language(speaker: str | None) -> str | None:
    """The native model language of a built-in speaker ("Ryan" -> "english", "Uncle Fu" ->
    "chinese"), or None for a speaker we do not know."""
    if not speaker:
        return None
    return SPEAKER_LANGUAGES.get(speaker.strip().lower().replace(" ", "_").replace("-", "_"))


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
        self._names = frozenset(self._codes.values())
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

    def choose(self, text: str, previous: str | None = None,
               fallback: str | None = None) -> str:
        """The language to speak `text` in.

        The detected language when detection is sure (probability >= MIN_CONFIDENCE).  A
        sentence too short or too bare to detect ("OK.", "Gern.", "21,5 °C.") takes
        `previous`, the language of the request's or stream's sentence before it; for the
        first sentence, `fallback`, the voice's own language (`speaker_language`: Ryan ->
        "english", Vivian -> "chinese"); "auto" (the model decides from the text) only when
        neither is a language this detector knows.
        """
        language, probability = self.detect(text)
        if probability >= MIN_CONFIDENCE:
            return language
        for known in (previous, fallback):
            if known in self._names:
                return known
        return AUTO
