"""Voice folders: one folder per designed, cloned or styled voice, read and checked at start.

`<voices-dir>/<name>/` holds, by kind:

- cloned: `reference.wav` (or .flac/.ogg/.mp3; any rate, mono or stereo) and optionally
  `reference.txt` (its transcript: in-context cloning; without it, from the speaker embedding
  alone);
- designed: `instruct.txt` (the voice described in words);
- a built-in speaker with a style: `speaker.txt` (the speaker's name) and optionally
  `instruct.txt` (how to speak).

Any folder may add `model.txt` naming which configured `--model` serves it.  Folder names are
voice names: letters, digits, `_` and `-`.  What can be checked without a model (readable
files, a non-empty instruction, a reference of at least a second) is checked here; a folder
that fails is logged and left out, the others stay.  Which checkpoint serves a folder is the
catalog's business.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from ..contract import MIN_REFERENCE_SECONDS
from .untrusted import clean

_LOGGER = logging.getLogger(__name__)

BUILTIN, DESIGNED, CLONED = "builtin", "designed", "cloned"  # voice kinds

VOICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
REFERENCE_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
MAX_INSTRUCT_CHARS = 2000
MAX_TRANSCRIPT_CHARS = 2000


class VoiceFolderError(ValueError):
    """A voice folder that cannot be used (the message says why)."""


def reference_seconds(path: Path) -> float:
    """Duration of a recording from its header (no decoding)."""
    import soundfile

    try:
        info = soundfile.info(str(path))
    except Exception as err:  # soundfile raises LibsndfileError, RuntimeError, TypeError...
        raise VoiceFolderError(f"cannot read {path.name}: {err}") from err
    if not info.samplerate or info.frames <= 0:
        raise VoiceFolderError(f"{path.name} holds no audio")
    return info.frames / info.samplerate


@dataclass
class VoiceFolder:
    """A voice folder as scanned: its files read and checked, its checkpoint not yet chosen."""

    name: str
    folder: Path
    kind: str
    speaker: str | None = None
    instruct: str | None = None
    reference: Path | None = None
    transcript: str | None = None
    model: str | None = None  # from model.txt


def _read_text(path: Path, limit: int) -> str:
    """A voice file's text, cleaned of what is not text (control characters, lone
    surrogates: they would reach the model and `describe`)."""
    try:
        if path.stat().st_size > 4 * limit + 16:  # more than `limit` characters can take
            raise VoiceFolderError(f"{path.name} is longer than {limit} characters")
        text = clean(path.read_text(encoding="utf-8-sig")).strip()
    except UnicodeDecodeError as err:
        raise VoiceFolderError(f"{path.name} is not UTF-8 text") from err
    except OSError as err:
        raise VoiceFolderError(f"cannot read {path.name}: {err.strerror or err}") from err
    if len(text) > limit:
        raise VoiceFolderError(f"{path.name} is {len(text)} characters long; at most {limit}")
    return text


def read_voice_folder(folder: Path) -> VoiceFolder:
    """Read and check one voice folder (no model needed); VoiceFolderError says what is wrong."""
    name = folder.name
    if not VOICE_NAME.match(name):
        raise VoiceFolderError("a voice folder's name may hold only letters, digits, _ and -, "
                               "up to 64 characters")
    files = {p.name.lower(): p for p in folder.iterdir() if p.is_file()}
    references = [files[f"reference{ext}"] for ext in REFERENCE_EXTENSIONS
                  if f"reference{ext}" in files]
    instruct = speaker = transcript = model = None
    if "instruct.txt" in files:
        instruct = _read_text(files["instruct.txt"], MAX_INSTRUCT_CHARS)
        if not instruct:
            raise VoiceFolderError("instruct.txt is empty: describe the voice in it")
    if "speaker.txt" in files:
        speaker = _read_text(files["speaker.txt"], 100)
        if not speaker:
            raise VoiceFolderError("speaker.txt is empty: name a built-in speaker in it")
    if "model.txt" in files:
        model = _read_text(files["model.txt"], 1000) or None
    if "reference.txt" in files:
        transcript = _read_text(files["reference.txt"], MAX_TRANSCRIPT_CHARS) or None
        if transcript is None:
            _LOGGER.warning("Voice %s: reference.txt is empty; cloning from the recording "
                            "alone (x-vector only)", name)

    if references:
        if len(references) > 1:
            raise VoiceFolderError("more than one reference recording: "
                                   + ", ".join(p.name for p in references))
        if speaker:
            raise VoiceFolderError("both a reference recording and speaker.txt: a voice is "
                                   "either cloned or a built-in speaker")
        if instruct:
            _LOGGER.warning("Voice %s: instruct.txt ignored, cloned voices take no "
                            "instruction", name)
        reference = references[0]
        seconds = reference_seconds(reference)
        if seconds < MIN_REFERENCE_SECONDS:
            raise VoiceFolderError(f"{reference.name} is {seconds:.2f} s long; at least "
                                   f"{MIN_REFERENCE_SECONDS:g} s of speech is needed")
        return VoiceFolder(name, folder, CLONED, reference=reference, transcript=transcript,
                           model=model)
    if transcript:
        raise VoiceFolderError("reference.txt without a reference recording (reference.wav)")
    if speaker:
        return VoiceFolder(name, folder, BUILTIN, speaker=speaker, instruct=instruct,
                           model=model)
    if instruct:
        return VoiceFolder(name, folder, DESIGNED, instruct=instruct, model=model)
    raise VoiceFolderError("no reference.wav (cloned voice), instruct.txt (designed voice) or "
                           "speaker.txt (built-in speaker with a style)")


def scan_voices_dir(voices_dir: Path | None) -> list[VoiceFolder]:
    """Every usable voice folder; the others are logged and left out."""
    if voices_dir is None:
        return []
    voices_dir = Path(voices_dir)
    if not voices_dir.is_dir():
        _LOGGER.info("No voices folder at %s: only built-in voices", voices_dir)
        return []
    found = []
    for folder in sorted(voices_dir.iterdir()):
        if folder.name.startswith(".") or not folder.is_dir():
            continue
        try:
            found.append(read_voice_folder(folder))
        except (VoiceFolderError, OSError) as err:
            _LOGGER.error("Voice folder %s left out: %s", folder, err)
    return found
