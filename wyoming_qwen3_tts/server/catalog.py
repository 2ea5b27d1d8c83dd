"""Every voice the server offers, and the `info` built from them.

A voice has a kind, a checkpoint that serves it, a description and its languages:

- **builtin**: a speaker of a CustomVoice checkpoint, named like the checkpoint's
  `talker_config.spk_id` (not a hard-coded list);
- **designed**: a folder `<voices-dir>/<name>/` with `instruct.txt` (the voice described in
  words), served by a VoiceDesign checkpoint;
- **builtin with a style**: a folder with `speaker.txt` (a built-in speaker's name) and
  `instruct.txt` (how to speak), served by a CustomVoice checkpoint (only the 1.7B ones follow
  the instruction; the 0.6B ones speak the plain speaker);
- **cloned**: a folder with `reference.wav` (or .flac/.ogg/.mp3; any rate, mono or stereo) and
  optionally `reference.txt` (its transcript: ICL mode; without it x-vector-only mode),
  served by a Base checkpoint.

Folders are read and checked by voice_folders.py.  Any folder may add `model.txt` naming
which configured `--model` serves it; otherwise the first configured checkpoint of the right
kind does.  A folder whose checkpoint cannot serve it is logged and left out, the others stay.

Clients' voice names are only ever looked up here (case-insensitive, spaces as underscores):
they never become paths.

Home Assistant reads the voice list once, when the integration is set up, possibly while the
models are still loading.  So the list is known before the models are: `peek_checkpoint`
reads only a checkpoint's config.json, from a local folder or an earlier download in the data
directory (it never downloads).  For Qwen's published repos not downloaded yet, the kind comes
from the repo name and the CustomVoice speakers from the model card; a loaded checkpoint's own
lists replace whatever was peeked.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from wyoming.info import Attribution, Info, TtsProgram, TtsVoice

from .. import __version__
from ..contract import Engine
from .languages import LANGUAGES, codes_for
from .voice_folders import BUILTIN, CLONED, DESIGNED, VoiceFolder, VoiceFolderError

_LOGGER = logging.getLogger(__name__)

ATTRIBUTION = Attribution(name="Qwen", url="https://github.com/QwenLM/Qwen3-TTS")
PROGRAM_NAME = "qwen3-tts"

# the checkpoint kind (config.json tts_model_type) each voice kind needs
MODEL_TYPE_OF = {BUILTIN: "custom_voice", DESIGNED: "voice_design", CLONED: "base"}
KIND_NAMES = {"custom_voice": "CustomVoice", "voice_design": "VoiceDesign", "base": "Base"}

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
# Qwen's published 12 Hz checkpoints: kind and size, known from the name before any download
_QWEN_REPOS = {
    "Qwen/Qwen3-TTS-12Hz-0.6B-CustomVoice": ("custom_voice", "0b6"),
    "Qwen/Qwen3-TTS-12Hz-1.7B-CustomVoice": ("custom_voice", "1b7"),
    "Qwen/Qwen3-TTS-12Hz-1.7B-VoiceDesign": ("voice_design", "1b7"),
    "Qwen/Qwen3-TTS-12Hz-0.6B-Base": ("base", "0b6"),
    "Qwen/Qwen3-TTS-12Hz-1.7B-Base": ("base", "1b7"),
}
# When no voice is asked for and --voice is not set: the first of these the model has.
_DEFAULT_PREFERENCE = ("ryan", "aiden", "vivian")

def normalize(name: str) -> str:
    """How voice names are compared: any case, spaces for underscores."""
    return name.strip().lower().replace(" ", "_")


def match_speaker(speakers: list[str], name: str | None) -> str | None:
    """The checkpoint's spelling of built-in speaker `name` (any case, spaces for
    underscores), or None."""
    if not name:
        return None
    wanted = normalize(name)
    for speaker in speakers:
        if speaker.lower() == wanted:
            return speaker
    return None


def describe_speaker(speaker: str) -> str:
    """A short human name for the voice menu (Home Assistant shows the description)."""
    known = _KNOWN_SPEAKERS.get(speaker.lower())
    if known is None:
        return speaker.replace("_", " ").title()
    name, native, timbre = known
    return f"{name} ({native}; {timbre})"


def _short(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


@dataclass
class CheckpointSummary:
    """What a checkpoint offers, peeked from its config.json or read off the loaded engine."""

    model_type: str
    speakers: list[str]
    languages: list[str]
    source: str = ""
    size: str = ""  # config.json tts_model_size: "0b6", "1b7"; "" unknown


@dataclass
class Voice:
    """One voice of the catalog."""

    name: str  # as offered in `info` (a speaker's or a folder's spelling)
    kind: str  # BUILTIN, DESIGNED or CLONED
    model: str  # the --model value of the checkpoint serving it
    description: str
    languages: list[str]  # model language names ("english", ...)
    speaker: str | None = None  # built-in speaker (BUILTIN)
    instruct: str | None = None  # voice description (DESIGNED) or style (BUILTIN)
    reference: Path | None = None  # reference recording (CLONED)
    transcript: str | None = None  # its transcript (CLONED, ICL mode)
    folder: Path | None = None  # the voice folder, if any

    @property
    def key(self) -> str:
        return normalize(self.name)


@dataclass
class Checkpoint:
    """A configured --model and what is known of it."""

    model: str
    summary: CheckpointSummary | None = None  # None: not known before loading
    loaded: bool = False


class Catalog:
    """The voices and languages currently offered (shared by the event loop and the worker).

    Rebuilt whenever what is known of a checkpoint changes (peeked at start, then loaded);
    readers get a consistent snapshot (the voice table is replaced, never edited in place).
    """

    def __init__(self, models: list[str] | str, streaming: bool,
                 folders: list[VoiceFolder] | None = None) -> None:
        models = [models] if isinstance(models, str) else list(models)
        self.checkpoints = {model: Checkpoint(model) for model in models}
        self.streaming = streaming
        self.folders = list(folders or [])
        self._voices: dict[str, Voice] = {}
        self._lock = threading.Lock()
        self._reported: set[str] = set()
        # voices that failed to prepare: name key -> (their folder's files then, why)
        self._broken: dict[str, tuple[tuple, str]] = {}
        self._rebuild()

    @property
    def first_model(self) -> str:
        return next(iter(self.checkpoints))

    # -- what is known of the checkpoints --------------------------------------------------
    def set_checkpoint(self, model: str, summary: CheckpointSummary | None,
                       loaded: bool | None = None) -> None:
        """What is known of `model` (None: unchanged); `loaded` once it has been loaded."""
        with self._lock:
            checkpoint = self.checkpoints[model]
            if summary is not None:
                summary.languages = [name for name in summary.languages if name in LANGUAGES]
                checkpoint.summary = summary
            if loaded is not None:
                checkpoint.loaded = loaded
            self._rebuild()

    def set_folders(self, folders: list[VoiceFolder]) -> None:
        """The voice folders now (after a rescan, or one was added or removed)."""
        with self._lock:
            self.folders = list(folders)
            self._rebuild()

    @property
    def loaded(self) -> bool:
        return self.checkpoints[self.first_model].loaded

    @property
    def known(self) -> bool:
        """True when every checkpoint's voice list is real (peeked or loaded), not a guess."""
        return all(c.summary is not None for c in self.checkpoints.values())

    # -- voices ----------------------------------------------------------------------------
    def _report(self, message: str) -> None:
        if message not in self._reported:
            self._reported.add(message)
            _LOGGER.error(message)

    def _rebuild(self) -> None:
        voices: dict[str, Voice] = {}
        known = [c for c in self.checkpoints.values() if c.summary is not None]
        for checkpoint in known:
            summary = checkpoint.summary
            assert summary is not None
            if summary.model_type != "custom_voice":
                continue
            for speaker in summary.speakers:
                voice = Voice(speaker, BUILTIN, checkpoint.model, describe_speaker(speaker),
                              list(summary.languages), speaker=speaker)
                if voice.key in voices:
                    _LOGGER.debug("Speaker %s of %s: already served by %s", speaker,
                                  checkpoint.model, voices[voice.key].model)
                    continue
                voices[voice.key] = voice
        for folder in self.folders:
            try:
                folder_voice = self._folder_voice(folder, known)
            except VoiceFolderError as err:
                self._report(f"Voice folder {folder.folder} left out: {err}")
                continue
            if folder_voice is None:
                continue  # its checkpoint is not known yet
            voice = folder_voice
            broken = self._broken.get(voice.key)
            if broken is not None and broken[0] == folder_files(folder.folder):
                continue  # failed to prepare; tried again once its files change
            if voice.key in voices:
                other = voices[voice.key]
                self._report(f"Voice folder {folder.folder} left out: the name {voice.name!r} "
                             f"is taken by the {other.kind} voice {other.name} of "
                             f"{other.model}")
                continue
            voices[voice.key] = voice
        self._voices = voices

    def _folder_voice(self, folder: VoiceFolder, known: list[Checkpoint]) -> Voice | None:
        wanted = MODEL_TYPE_OF[folder.kind]
        what = {BUILTIN: "a built-in speaker with a style", DESIGNED: "a designed voice",
                CLONED: "a cloned voice"}[folder.kind]
        if folder.model is not None:
            checkpoint = self.checkpoints.get(folder.model)
            if checkpoint is None:
                raise VoiceFolderError(f"model.txt names {folder.model!r}, which is not a "
                                       "configured --model")
            if checkpoint.summary is None:
                return None
            if checkpoint.summary.model_type != wanted:
                raise VoiceFolderError(
                    f"{what} needs a {KIND_NAMES[wanted]} checkpoint, but model.txt names "
                    f"{folder.model}, a {KIND_NAMES.get(checkpoint.summary.model_type)} one")
        else:
            matching = [c for c in known if c.summary and c.summary.model_type == wanted]
            if not matching:
                if len(known) < len(self.checkpoints):
                    return None  # an unknown checkpoint may be of that kind
                raise VoiceFolderError(f"{what} needs a {KIND_NAMES[wanted]} checkpoint; none "
                                       "is configured (add one with --model)")
            checkpoint = matching[0]
        summary = checkpoint.summary
        assert summary is not None
        languages = list(summary.languages)
        if folder.kind == BUILTIN:
            speaker = match_speaker(summary.speakers, folder.speaker)
            if speaker is None:
                raise VoiceFolderError(f"speaker.txt names {folder.speaker!r}, not a speaker "
                                       f"of {checkpoint.model}: {', '.join(summary.speakers)}")
            if folder.instruct and summary.size == "0b6":
                key = f"0.6B style {folder.folder}"
                if key not in self._reported:
                    self._reported.add(key)
                    _LOGGER.warning("Voice %s: %s is a 0.6B CustomVoice checkpoint, which "
                                    "ignores style instructions (the 1.7B one follows them)",
                                    folder.name, checkpoint.model)
            description = describe_speaker(speaker)
            if folder.instruct:
                description = f"{description}, {_short(folder.instruct, 80)}"
            return Voice(folder.name, BUILTIN, checkpoint.model, description, languages,
                         speaker=speaker, instruct=folder.instruct, folder=folder.folder)
        if folder.kind == DESIGNED:
            return Voice(folder.name, DESIGNED, checkpoint.model,
                         f"Designed: {_short(folder.instruct or '')}", languages,
                         instruct=folder.instruct, folder=folder.folder)
        mode = "with transcript" if folder.transcript else "from the recording alone"
        return Voice(folder.name, CLONED, checkpoint.model, f"Cloned voice ({mode})",
                     languages, reference=folder.reference, transcript=folder.transcript,
                     folder=folder.folder)

    @property
    def voices(self) -> list[Voice]:
        return list(self._voices.values())

    def voice(self, name: str | None) -> Voice | None:
        """The voice named `name` (any case, spaces as underscores), or None."""
        if not name:
            return None
        return self._voices.get(normalize(name))

    def voices_of(self, model: str) -> list[Voice]:
        return [v for v in self._voices.values() if v.model == model]

    @property
    def voice_names(self) -> list[str]:
        return [v.name for v in self._voices.values()]

    def unknown_voice(self, name: str) -> str:
        """The message for a voice name the catalog does not have."""
        return f"unknown voice {name!r}; voices: {', '.join(self.voice_names) or 'none'}"

    @property
    def languages(self) -> list[str]:
        """Every language some configured checkpoint speaks, in LANGUAGES order."""
        spoken = {name for c in self.checkpoints.values() if c.summary
                  for name in c.summary.languages}
        return [name for name in LANGUAGES if name in spoken]

    def exclude(self, name: str, why: str) -> None:
        """A folder voice failed to prepare (an unusable recording, say): leave it out of
        `info` and of the default voice, logged once, until its folder's files change."""
        with self._lock:
            voice = self._voices.get(normalize(name))
            if voice is None or voice.folder is None:
                return
            self._broken[voice.key] = (folder_files(voice.folder), why)
            _LOGGER.error("Voice %s left out: %s (the other voices work; fix or replace its "
                          "files and it is tried again)", voice.name, why)
            self._rebuild()

    def left_out(self, name: str | None) -> str | None:
        """Why voice `name` was left out after failing to prepare (None: it was not)."""
        broken = self._broken.get(normalize(name)) if name else None
        return broken[1] if broken is not None else None

    def default_voice(self, configured: str | None) -> Voice | None:
        """--voice if given (None if no such voice), else a preferred built-in speaker of the
        first checkpoint, else the first voice it serves."""
        if configured:
            return self.voice(configured)
        first = self.first_model
        own = self.voices_of(first)
        for preferred in _DEFAULT_PREFERENCE:
            voice = self._voices.get(preferred)
            if voice is not None and voice.model == first and voice.folder is None:
                return voice
        return own[0] if own else None

    def info(self) -> Info:
        voices = [
            TtsVoice(
                name=voice.name,
                description=voice.description,
                attribution=ATTRIBUTION,
                installed=True,
                version=None,
                languages=codes_for(voice.languages),
            )
            for voice in self._voices.values()
        ]
        state = "" if self.loaded else ", loading"
        return Info(
            tts=[
                TtsProgram(
                    name=PROGRAM_NAME,
                    description=f"Qwen3-TTS ({', '.join(self.checkpoints)}{state})",
                    attribution=ATTRIBUTION,
                    installed=True,
                    version=__version__,
                    voices=voices,
                    supports_synthesize_streaming=self.streaming,
                )
            ]
        )


def folder_files(folder: Path) -> tuple:
    """A voice folder's files as they are now (names, sizes, modification times)."""
    try:
        return tuple(sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns)
                            for p in Path(folder).iterdir() if p.is_file()))
    except OSError:
        return ()


def summarize_config(config: dict, source: str = "") -> CheckpointSummary:
    talker = config.get("talker_config") or {}
    model_type = config.get("tts_model_type") or "custom_voice"
    speakers = list((talker.get("spk_id") or {}).keys()) if model_type == "custom_voice" else []
    languages = [name for name in (talker.get("codec_language_id") or {}) if name in LANGUAGES]
    return CheckpointSummary(model_type, speakers, languages or list(LANGUAGES), source,
                             str(config.get("tts_model_size") or ""))


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
    if model in _QWEN_REPOS:
        model_type, size = _QWEN_REPOS[model]
        speakers = list(_KNOWN_SPEAKERS) if model_type == "custom_voice" else []
        return CheckpointSummary(model_type, speakers, list(LANGUAGES),
                                 "published checkpoint list", size)
    return None


def summarize_engine(engine: Engine) -> CheckpointSummary:
    """What a loaded engine offers."""
    return CheckpointSummary(engine.model_type, list(engine.speakers), list(engine.languages),
                             "loaded", engine.size)
