"""What the server offers: its voices (one per built-in speaker), their languages, the `info`.

Home Assistant reads the voice list once, when the integration is set up, possibly while the
model is still loading.  So the list is known before the model is: `peek_checkpoint` reads
only the checkpoint's config.json, from a local folder or from an earlier download in the
data directory (it never downloads).  When even that is not possible (first start, download
still running) and the model is one of Qwen's CustomVoice releases, their nine published
speakers are served; the loaded engine's list replaces whatever was served before.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from wyoming.info import Attribution, Info, TtsProgram, TtsVoice

from . import __version__
from .languages import LANGUAGES, codes_for

_LOGGER = logging.getLogger(__name__)

ATTRIBUTION = Attribution(name="Qwen", url="https://github.com/QwenLM/Qwen3-TTS")
PROGRAM_NAME = "qwen3-tts"

# Qwen's descriptions of the CustomVoice speakers (model card), keyed like the checkpoint's
# talker_config.spk_id: display name, native language, timbre.
_KNOWN_SPEAKERS = {
    "vivian": ("Vivian", "Chinese", "bright, slightly edgy young female voice"),
    "serena": ("Serena", "Chinese", "warm, gentle young female voice"),
    "uncle_fu": ("Uncle Fu", "Chinese", "seasoned male voice, low and mellow"),
    "dylan": ("Dylan", "Beijing dialect", "youthful Beijing male voice"),
    "eric": ("Eric", "Sichuan dialect", "lively Chengdu male voice, slightly husky"),
    "ryan": ("Ryan", "English", "dynamic male voice with strong rhythmic drive"),
    "aiden": ("Aiden", "English", "sunny American male voice"),
    "ono_anna": ("Ono Anna", "Japanese", "playful Japanese female voice"),
    "sohee": ("Sohee", "Korean", "warm Korean female voice"),
}
_QWEN_CUSTOM_VOICE_REPOS = (
    "Qwen/Qwen3-TTS-12Hz-0.6B-CustomVoice",
    "Qwen/Qwen3-TTS-12Hz-1.7B-CustomVoice",
)
# When no voice is asked for and --voice is not set: the first of these the model has.
_DEFAULT_PREFERENCE = ("ryan", "aiden", "vivian")


def find_speaker(speakers: list[str], name: str | None) -> str | None:
    """The checkpoint's spelling of speaker `name` (any case, spaces for underscores)."""
    if not name:
        return None
    wanted = name.strip().lower().replace(" ", "_")
    for speaker in speakers:
        if speaker.lower() == wanted:
            return speaker
    return None


def default_speaker(speakers: list[str], configured: str | None) -> str | None:
    """--voice if given (None if the model lacks it), else a preferred or the first speaker."""
    if configured:
        return find_speaker(speakers, configured)
    for preferred in _DEFAULT_PREFERENCE:
        found = find_speaker(speakers, preferred)
        if found:
            return found
    return speakers[0] if speakers else None


def describe_speaker(speaker: str) -> str:
    """A short human name for the voice menu (Home Assistant shows the description)."""
    known = _KNOWN_SPEAKERS.get(speaker.lower())
    if known is None:
        return speaker.replace("_", " ").title()
    name, native, timbre = known
    return f"{name} ({native}; {timbre})"


@dataclass
class CheckpointSummary:
    model_type: str
    speakers: list[str]
    languages: list[str]
    source: str = ""


@dataclass
class Catalog:
    """The voices and languages currently offered; replaced once the engine has loaded."""

    model_name: str
    streaming: bool
    model_type: str = "custom_voice"
    speakers: list[str] = field(default_factory=list)
    languages: list[str] = field(default_factory=list)
    loaded: bool = False

    def update(self, model_type: str, speakers: list[str], languages: list[str],
               loaded: bool) -> None:
        self.model_type = model_type
        self.speakers = list(speakers)
        self.languages = [name for name in languages if name in LANGUAGES]
        self.loaded = loaded

    @property
    def known(self) -> bool:
        """True when the speaker list is real (peeked or loaded), not a guess."""
        return self.loaded or bool(self.speakers)

    def find_speaker(self, name: str | None) -> str | None:
        """The checkpoint's spelling of speaker `name` (any case), or None."""
        return find_speaker(self.speakers, name)

    def info(self) -> Info:
        codes = codes_for(self.languages)
        voices = [
            TtsVoice(
                name=speaker,
                description=describe_speaker(speaker),
                attribution=ATTRIBUTION,
                installed=True,
                version=None,
                languages=list(codes),
            )
            for speaker in self.speakers
        ]
        state = "" if self.loaded else ", loading"
        return Info(
            tts=[
                TtsProgram(
                    name=PROGRAM_NAME,
                    description=f"Qwen3-TTS ({self.model_name}{state})",
                    attribution=ATTRIBUTION,
                    installed=True,
                    version=__version__,
                    voices=voices,
                    supports_synthesize_streaming=self.streaming,
                )
            ]
        )


def summarize_config(config: dict, source: str = "") -> CheckpointSummary:
    talker = config.get("talker_config") or {}
    model_type = config.get("tts_model_type") or "custom_voice"
    speakers = list((talker.get("spk_id") or {}).keys()) if model_type == "custom_voice" else []
    languages = [name for name in (talker.get("codec_language_id") or {}) if name in LANGUAGES]
    return CheckpointSummary(model_type, speakers, languages or list(LANGUAGES), source)


def _cached_config(model: str, data_dir: Path) -> Path | None:
    """config.json of `model` if it is a local folder or already downloaded; never downloads."""
    folder = Path(model).expanduser()
    if folder.is_dir():
        candidate = folder / "config.json"
        return candidate if candidate.is_file() else None
    if model.count("/") != 1:
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - a dependency of the engine
        return None
    # The engine downloads into <data_dir>/models (Hugging Face cache layout).
    try:
        found = try_to_load_from_cache(model, "config.json", cache_dir=Path(data_dir) / "models")
    except Exception:  # malformed repo id and the like
        return None
    return Path(found) if isinstance(found, str) else None


def peek_checkpoint(model: str, data_dir: Path) -> CheckpointSummary | None:
    """What the checkpoint offers, from its config.json only (milliseconds), if at hand."""
    path = _cached_config(model, data_dir)
    if path is not None:
        try:
            with open(path, encoding="utf-8") as f:
                return summarize_config(json.load(f), str(path))
        except (OSError, ValueError) as err:
            _LOGGER.warning("Could not read %s: %s", path, err)
            return None
    if model in _QWEN_CUSTOM_VOICE_REPOS:
        return CheckpointSummary("custom_voice", list(_KNOWN_SPEAKERS), list(LANGUAGES),
                                 "published speaker list")
    return None
