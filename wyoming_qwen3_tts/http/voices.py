"""Voice folders managed live: created, renamed and deleted in --voices-dir, the catalog in step.

Folders are written in the format voice_folders.py reads (nothing new on disk) and each change
is atomic: a new voice is written into a hidden `.new-*` folder beside the others (hidden
folders are never scanned), checked there with `read_voice_folder` exactly as a folder made by
hand is checked at start, and only then renamed into place; a deleted voice is renamed to a
hidden `.deleted-*` folder first, then removed.  After every change the folder is scanned
again and `catalog.set_folders` makes the change visible at once, to Wyoming's `describe` too.

Folders changed by hand (added, removed, renamed, a file inside added, removed or rewritten)
are picked up by `watch`: every WATCH_SECONDS it compares a cheap stamp of the folder (the
names, sizes and modification times of the voice folders and the files directly in them,
from a few `stat` calls) with the last one and scans again when it changed.

Names from clients are checked against VOICE_NAME and looked up in the catalog; a path is
only ever `voices_dir / <checked name>`.  This module imports neither FastAPI nor torch.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
import threading
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from ..server.catalog import KIND_NAMES, MODEL_TYPE_OF, Catalog, Voice, match_speaker
from ..server.voice_folders import (
    BUILTIN,
    CLONED,
    DESIGNED,
    MAX_INSTRUCT_CHARS,
    MAX_TRANSCRIPT_CHARS,
    VOICE_NAME,
    VoiceFolderError,
    read_voice_folder,
    scan_voices_dir,
)

_LOGGER = logging.getLogger(__name__)

WATCH_SECONDS = 2.0
MAX_VOICES = 200  # voice folders in --voices-dir; creating one more is refused


class VoiceError(ValueError):
    """A management request that cannot be done (`status`: the HTTP status, `code`)."""

    def __init__(self, message: str, status: int = 400, code: str = "invalid-voice") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def clean_text(text: str, limit: int | None = None) -> str:
    """Client text without what must never reach a file, the log or the model: lone
    surrogates, control characters (newlines and tabs stay) and surrounding blanks."""
    kept = "".join(ch for ch in text if ch in "\n\t"
                   or unicodedata.category(ch) not in ("Cs", "Cc", "Cn", "Co"))
    kept = kept.strip()
    if limit is not None and len(kept) > limit:
        raise VoiceError(f"text is {len(kept)} characters long; at most {limit}")
    return kept


def check_name(name: str) -> str:
    if not isinstance(name, str) or not VOICE_NAME.match(name):
        raise VoiceError("a voice name may hold only letters, digits, _ and - (starting with a "
                         "letter or digit), up to 64 characters", code="invalid-name")
    return name


@dataclass
class NewVoice:
    """What a new voice folder holds (file name -> content)."""

    name: str
    kind: str
    files: dict[str, bytes] = field(default_factory=dict)
    model: str | None = None


class VoiceStore:
    """The voice folders of one --voices-dir, and the catalog kept in step with them."""

    def __init__(self, catalog: Catalog, voices_dir: Path | None,
                 max_voices: int = MAX_VOICES) -> None:
        self.catalog = catalog
        self.voices_dir = Path(voices_dir) if voices_dir is not None else None
        self.max_voices = max_voices
        self.protected: set[str] = set()  # voice keys that must stay (the default voice)
        self._lock = threading.Lock()  # one change or scan at a time (event loop or thread)
        self._stamp = self._read_stamp()

    # -- keeping the catalog in step -----------------------------------------------------------
    def _read_stamp(self):
        if self.voices_dir is None:
            return None
        try:
            entries = list(os.scandir(self.voices_dir))
        except OSError:
            return None
        stamp = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                if not entry.is_dir():
                    continue
                info = entry.stat()
                files = sorted((f.name, s.st_size, s.st_mtime_ns) for f in os.scandir(entry.path)
                               for s in [f.stat()])
            except OSError:
                continue
            stamp.append((entry.name, info.st_mtime_ns, tuple(files)))
        return tuple(sorted(stamp))

    def rescan(self) -> None:
        with self._lock:
            self._rescan()

    def _rescan(self) -> None:
        self._stamp = self._read_stamp()
        self.catalog.set_folders(scan_voices_dir(self.voices_dir))

    def refresh_if_changed(self) -> bool:
        """Scan again if the folder changed since the last scan (by hand); True if it did."""
        with self._lock:
            if self._read_stamp() == self._stamp:
                return False
            _LOGGER.info("The voices folder %s changed: reading it again", self.voices_dir)
            self._rescan()
            return True

    async def watch(self, interval: float = WATCH_SECONDS) -> None:
        """Pick up changes made by hand, until cancelled."""
        while True:
            await asyncio.sleep(interval)
            try:
                await asyncio.to_thread(self.refresh_if_changed)
            except Exception:  # noqa: BLE001 - keep watching
                _LOGGER.exception("Could not read the voices folder %s", self.voices_dir)

    # -- changes -------------------------------------------------------------------------------
    def _folder_voice(self, name: str) -> Voice:
        voice = self.catalog.voice(name)
        if voice is None:
            raise VoiceError(self.catalog.unknown_voice(name[:80]), 404, "unknown-voice")
        if voice.folder is None:
            raise VoiceError(f"{voice.name} is a built-in speaker of {voice.model}: it has no "
                             "voice folder to change", 403, "builtin-voice")
        return voice

    def _check_free(self, name: str) -> None:
        assert self.voices_dir is not None
        taken = self.catalog.voice(name)
        if taken is not None:
            raise VoiceError(f"the name {name!r} is taken by the {taken.kind} voice "
                             f"{taken.name}", 409, "name-taken")
        if any(entry.name.lower() == name.lower() for entry in os.scandir(self.voices_dir)):
            raise VoiceError(f"{self.voices_dir} already holds a folder named {name!r} (left "
                             "out of the voices: the log says why)", 409, "name-taken")

    def checkpoint_for(self, kind: str, model: str | None) -> str:
        """The configured checkpoint that would serve a new voice of `kind` (VoiceError if
        none can)."""
        wanted = MODEL_TYPE_OF[kind]
        checkpoints = self.catalog.checkpoints
        if model:
            if model not in checkpoints:
                raise VoiceError(f"model {model[:200]!r} is not a configured checkpoint: "
                                 + ", ".join(checkpoints), code="unknown-model")
            summary = checkpoints[model].summary
            if summary is not None and summary.model_type != wanted:
                raise VoiceError(f"a {kind} voice needs a {KIND_NAMES[wanted]} checkpoint; "
                                 f"{model} is a {KIND_NAMES.get(summary.model_type)} one",
                                 code="wrong-model")
            return model
        for checkpoint in checkpoints.values():
            if checkpoint.summary is None or checkpoint.summary.model_type == wanted:
                return checkpoint.model
        raise VoiceError(f"a {kind} voice needs a {KIND_NAMES[wanted]} checkpoint, and none is "
                         "configured (add one with --model, or to extra_models in the add-on)",
                         code="no-checkpoint")

    def speaker_for(self, model: str, speaker: str) -> str:
        summary = self.catalog.checkpoints[model].summary
        if summary is None:
            return speaker
        found = match_speaker(summary.speakers, speaker)
        if found is None:
            raise VoiceError(f"{speaker[:80]!r} is not a speaker of {model}: "
                             + ", ".join(summary.speakers), code="unknown-speaker")
        return found

    def create(self, new: NewVoice) -> Voice:
        """Write a new voice folder atomically and put the voice in the catalog."""
        if self.voices_dir is None:
            raise VoiceError("no --voices-dir", 409, "no-voices-dir")
        check_name(new.name)
        with self._lock:
            self.voices_dir.mkdir(parents=True, exist_ok=True)
            self._check_free(new.name)
            count = sum(1 for e in os.scandir(self.voices_dir)
                        if e.is_dir() and not e.name.startswith("."))
            if count >= self.max_voices:
                raise VoiceError(f"{self.voices_dir} holds {count} voices; at most "
                                 f"{self.max_voices}: delete one first", 409, "too-many-voices")
            staging = self.voices_dir / f".new-{secrets.token_hex(8)}"
            folder = staging / new.name
            try:
                folder.mkdir(parents=True)
                files = dict(new.files)
                if new.model:
                    files["model.txt"] = new.model.encode("utf-8")
                for file_name, content in files.items():
                    (folder / file_name).write_bytes(content)
                try:
                    scanned = read_voice_folder(folder)
                except VoiceFolderError as err:
                    raise VoiceError(str(err)) from err
                if scanned.kind != new.kind:
                    raise VoiceError(f"the files make a {scanned.kind} voice, not a {new.kind} "
                                     "one")
                target = self.voices_dir / new.name
                os.rename(folder, target)  # fails if a folder of that name appeared meanwhile
            except OSError as err:
                raise VoiceError(f"could not write the voice folder: {err.strerror or err}",
                                 500, "write-failed") from err
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            self._rescan()
            voice = self.catalog.voice(new.name)
            if voice is None:  # the catalog left it out after all (logged): take it back
                self._remove(target)
                self._rescan()
                raise VoiceError(f"the voice {new.name} cannot be served by the configured "
                                 "checkpoints (the log says why)", code="not-servable")
        _LOGGER.info("Voice %s created (%s, %s)", voice.name, voice.kind, voice.model)
        return voice

    def rename(self, name: str, new_name: str) -> Voice:
        check_name(new_name)
        with self._lock:
            voice = self._folder_voice(name)
            if voice.key in self.protected:
                raise VoiceError(f"{voice.name} is the default voice (--voice): it cannot be "
                                 "renamed", 409, "default-voice")
            if new_name.lower() != voice.name.lower():
                self._check_free(new_name)
            assert voice.folder is not None and self.voices_dir is not None
            try:
                os.rename(voice.folder, self.voices_dir / new_name)
            except OSError as err:
                raise VoiceError(f"could not rename: {err.strerror or err}", 500,
                                 "write-failed") from err
            self._rescan()
            renamed = self.catalog.voice(new_name)
        if renamed is None:
            raise VoiceError(f"{new_name} was renamed but is left out (the log says why)", 500,
                             "not-servable")
        _LOGGER.info("Voice %s renamed to %s", voice.name, renamed.name)
        return renamed

    def delete(self, name: str) -> Voice:
        with self._lock:
            voice = self._folder_voice(name)
            if voice.key in self.protected:
                raise VoiceError(f"{voice.name} is the default voice (--voice): it cannot be "
                                 "deleted", 409, "default-voice")
            assert voice.folder is not None
            self._remove(voice.folder)
            self._rescan()
        _LOGGER.info("Voice %s deleted", voice.name)
        return voice

    def _remove(self, folder: Path) -> None:
        assert self.voices_dir is not None
        trash = self.voices_dir / f".deleted-{secrets.token_hex(8)}"
        try:
            os.rename(folder, trash)
        except OSError as err:
            raise VoiceError(f"could not delete: {err.strerror or err}", 500,
                             "write-failed") from err
        shutil.rmtree(trash, ignore_errors=True)


def designed_voice(name: str, description: str, model: str | None) -> NewVoice:
    text = clean_text(description, MAX_INSTRUCT_CHARS)
    if not text:
        raise VoiceError("describe the voice: the description is empty")
    return NewVoice(name, DESIGNED, {"instruct.txt": text.encode("utf-8")}, model)


def styled_voice(name: str, speaker: str, style: str | None, model: str | None) -> NewVoice:
    files = {"speaker.txt": clean_text(speaker, 100).encode("utf-8")}
    if style and (text := clean_text(style, MAX_INSTRUCT_CHARS)):
        files["instruct.txt"] = text.encode("utf-8")
    return NewVoice(name, BUILTIN, files, model)


def cloned_voice(name: str, wav: bytes, transcript: str | None, model: str | None) -> NewVoice:
    files = {"reference.wav": wav}
    if transcript and (text := clean_text(transcript, MAX_TRANSCRIPT_CHARS)):
        files["reference.txt"] = text.encode("utf-8")
    return NewVoice(name, CLONED, files, model)
