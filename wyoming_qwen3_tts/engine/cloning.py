"""Cloned voices: a reference recording (+ transcript) -> ClonePrompt, cached on disk.

The prompt is built from the library's own parts, exactly as `create_voice_clone_prompt` of
`qwen-tts` 0.1.1 does for a 24 kHz waveform:

- speaker embedding: `model.extract_speaker_embedding(wav, 24000)` (the x-vector);
- reference codes: `model.speech_tokenizer.encode(wav, sr=24000).audio_codes[0]` ([frames, 16]),
  used only with a transcript (ICL mode); without one the voice is x-vector-only.

Before that the reference is read with soundfile (WAV, FLAC, OGG, ... at any rate), mixed down
to mono, resampled to 24 kHz (librosa, soxr), cut to `max_seconds` and padded with
PAD_SECONDS of silence: a reference that ends mid-word makes the model go on talking.

Computing a prompt runs the speaker encoder and the tokenizer's encoder over the clip (seconds
on a CPU with a real checkpoint), so it is kept in `<data_dir>/voice_cache/<key>.pt`, where the
key hashes everything the result depends on: the reference file's bytes, the transcript, the
trimming and padding, and the checkpoint's identity.  Editing either file gives another key;
an unchanged voice is loaded back in milliseconds.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

import numpy as np

from ..contract import DEFAULT_MAX_REFERENCE_SECONDS, MIN_REFERENCE_SECONDS, CloneSource
from ..contract import SAMPLE_RATE as SAMPLE_RATE  # what the speaker encoder and tokenizer take

_LOGGER = logging.getLogger(__name__)

PAD_SECONDS = 0.5  # silence appended to the reference
CACHE_VERSION = 2  # bump when the cached content or its computation changes


class ReferenceError(ValueError):
    """A reference recording that cannot be used (the message says why)."""


def read_reference(path: Path, max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    """The recording (its first `max_seconds` only: a 30-minute file is not decoded whole) as
    float32 mono at its own rate; ReferenceError if unreadable or not finite."""
    import soundfile

    try:
        with soundfile.SoundFile(str(path)) as sound:
            rate = int(sound.samplerate)
            frames = -1 if max_seconds is None else int(round(max_seconds * rate)) + 1
            audio = sound.read(frames=frames, dtype="float32", always_2d=True)
    except Exception as err:  # soundfile raises LibsndfileError, RuntimeError, TypeError...
        raise ReferenceError(f"cannot read {path.name}: {err}") from err
    if audio.size == 0:
        raise ReferenceError(f"{path.name} holds no audio")
    mono = audio.mean(axis=1).astype(np.float32)
    if not np.all(np.isfinite(mono)):
        raise ReferenceError(f"{path.name} holds invalid samples")
    return mono, rate


def prepare_reference(path: Path, max_seconds: float = DEFAULT_MAX_REFERENCE_SECONDS
                      ) -> np.ndarray:
    """The reference as the model takes it: 24 kHz mono float32, trimmed, silence appended."""
    audio, rate = read_reference(path, max_seconds)
    if len(audio) < MIN_REFERENCE_SECONDS * rate:
        raise ReferenceError(f"{path.name} is {len(audio) / rate:.2f} s long; at least "
                             f"{MIN_REFERENCE_SECONDS:g} s of speech is needed")
    audio = audio[: int(round(max_seconds * rate))]  # trim before resampling: less work
    if rate != SAMPLE_RATE:
        import librosa

        audio = librosa.resample(audio, orig_sr=rate, target_sr=SAMPLE_RATE).astype(np.float32)
    audio = audio[: int(round(max_seconds * SAMPLE_RATE))]
    pad = np.zeros(int(round(PAD_SECONDS * SAMPLE_RATE)), dtype=np.float32)
    return np.concatenate([audio, pad])


def checkpoint_identity(folder: Path) -> str:
    """Names the weights a prompt was computed with: config, and size/mtime of every weight
    file (a Hugging Face snapshot folder also carries the commit in its path)."""
    digest = hashlib.sha256(str(Path(folder).resolve()).encode())
    config = Path(folder) / "config.json"
    if config.is_file():
        digest.update(config.read_bytes())
    for weights in sorted(Path(folder).rglob("*.safetensors")):
        stat = weights.stat()
        digest.update(f"{weights.relative_to(folder)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def cache_key(wav: np.ndarray, transcript: str | None, max_seconds: float,
              checkpoint: str) -> str:
    """Names a clone prompt by what it is computed from: the prepared reference samples
    (the part of the recording that is used: nothing else of the file matters), the
    transcript, the trimming and padding, and the checkpoint with its encoders' precision."""
    digest = hashlib.sha256()
    digest.update(json.dumps({
        "version": CACHE_VERSION, "max_seconds": float(max_seconds), "pad": PAD_SECONDS,
        "rate": SAMPLE_RATE, "transcript": transcript or None, "checkpoint": checkpoint,
    }, sort_keys=True).encode())
    digest.update(np.ascontiguousarray(wav, dtype="<f4").tobytes())
    return digest.hexdigest()


def tensor_digest(*tensors) -> str:
    """SHA-256 of the tensors' shapes, dtypes and values (None counts as empty): what a cache
    file's content is checked against."""
    import torch

    digest = hashlib.sha256()
    for tensor in tensors:
        if tensor is not None:
            flat = tensor.detach().contiguous().view(-1)
            digest.update(f"{tuple(tensor.shape)}:{tensor.dtype}".encode())
            digest.update(flat.view(torch.uint8).numpy().tobytes())
        digest.update(b"|")
    return digest.hexdigest()


def speaker_embedding(model, wav: np.ndarray):
    """The library's `extract_speaker_embedding`, but with the mel frames in the speaker
    encoder's own dtype: the library casts them to the model's dtype, which is bfloat16 with
    `--dtype bfloat16` while the loader keeps the small encoder in float32."""
    import torch

    from .qwen_import import import_qwen_tts

    import_qwen_tts()
    from qwen_tts.core.models.modeling_qwen3_tts import mel_spectrogram

    mels = mel_spectrogram(torch.from_numpy(wav).unsqueeze(0), n_fft=1024, num_mels=128,
                           sampling_rate=SAMPLE_RATE, hop_size=256, win_size=1024, fmin=0,
                           fmax=12000).transpose(1, 2)
    encoder = model.speaker_encoder
    return encoder(mels.to(next(encoder.parameters()).dtype))[0]


def compute_clone_prompt(model, wav: np.ndarray, transcript: str | None):
    """The library's parts, as `create_voice_clone_prompt` uses them, on a 24 kHz clip."""
    import torch

    from .prompt import ClonePrompt

    with torch.inference_mode():
        embedding = speaker_embedding(model, wav)
        codes = None
        if transcript:
            codes = model.speech_tokenizer.encode(wav, sr=SAMPLE_RATE).audio_codes[0]
    return ClonePrompt(speaker_embedding=embedding.detach().clone(),
                       ref_codes=None if codes is None else codes.detach().clone(),
                       ref_text=transcript or None)


class ClonePromptCache:
    """Clone prompts in memory and on disk (<cache_dir>/<key>.pt), computed at most once."""

    def __init__(self, cache_dir: Path, max_seconds: float = DEFAULT_MAX_REFERENCE_SECONDS
                 ) -> None:
        self.cache_dir = Path(cache_dir)
        self.max_seconds = max_seconds
        self._memory: dict[str, object] = {}
        self._identities: dict[str, str] = {}
        self._keys: dict[tuple, str] = {}  # (file, its mtime and size, ...) -> cache key

    def _identity(self, folder: Path) -> str:
        key = str(folder)
        if key not in self._identities:
            self._identities[key] = checkpoint_identity(folder)
        return self._identities[key]

    def get(self, source: CloneSource, model, checkpoint_folder: Path):
        """The voice's ClonePrompt: from memory, from disk, or computed (then saved).
        ReferenceError if the recording cannot be used."""
        from .prompt import ClonePrompt

        # per request: a stat; the recording is read (its used part) once per change
        stat = Path(source.reference).stat()
        quick = (str(source.reference), stat.st_mtime_ns, stat.st_size, source.transcript,
                 str(checkpoint_folder))
        wav = None
        key = self._keys.get(quick)
        # the weights, and the precision the encoders run in (the tokenizer's follows the
        # vocoder's, which may be bfloat16)
        identity = (f"{self._identity(checkpoint_folder)}:{_dtype(model.speaker_encoder)}:"
                    f"{_dtype(model.speech_tokenizer.model)}")
        if key is None:
            wav = prepare_reference(source.reference, self.max_seconds)
            key = self._keys[quick] = cache_key(wav, source.transcript, self.max_seconds,
                                                identity)
        if key in self._memory:
            return self._memory[key]
        path = self.cache_dir / f"{key}.pt"
        prompt: ClonePrompt | None = None
        if path.is_file():
            prompt = self._load(path, key, identity, source, model)
        if prompt is None:
            if wav is None:
                wav = prepare_reference(source.reference, self.max_seconds)
            prompt = compute_clone_prompt(model, wav, source.transcript)
            mode = "ICL, with transcript" if prompt.icl else "x-vector only, no transcript"
            _LOGGER.info("Computed clone prompt for voice %s (%.1f s reference, %s)",
                         source.name, len(wav) / SAMPLE_RATE - PAD_SECONDS, mode)
            self._save(path, prompt, key, identity)
        self._memory[key] = prompt
        return prompt

    def _load(self, path: Path, key: str, identity: str, source: CloneSource, model):
        """A cached prompt, checked: its checksum, the key and checkpoint it was made for, and
        the shapes, dtypes and code ranges this model takes; None (recompute) on any doubt."""
        import torch

        from .prompt import ClonePrompt

        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
            problem = _cache_problem(data, key, identity, source, model)
        except Exception as err:  # noqa: BLE001 - unreadable: recomputed
            problem = f"{type(err).__name__}: {str(err)[:200]}"
        if problem is not None:
            _LOGGER.warning("Ignoring damaged clone cache %s (%s): computing it again", path,
                            problem)
            return None
        _LOGGER.info("Loaded cached clone prompt for voice %s", source.name)
        return ClonePrompt(data["speaker_embedding"], data["ref_codes"], data["ref_text"])

    def _save(self, path: Path, prompt, key: str, identity: str) -> None:
        """Write the prompt atomically (a temporary file renamed into place); a failure (disk
        full, read-only folder...) is logged and the prompt stays in memory only."""
        import torch

        tmp = None
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".clone-", suffix=".tmp", dir=self.cache_dir)
            with os.fdopen(fd, "wb") as f:
                torch.save({"version": CACHE_VERSION, "key": key, "identity": identity,
                            "speaker_embedding": prompt.speaker_embedding,
                            "ref_codes": prompt.ref_codes, "ref_text": prompt.ref_text,
                            "checksum": tensor_digest(prompt.speaker_embedding,
                                                      prompt.ref_codes)}, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)  # atomic: readers see the old file or the whole new one
            tmp = None
        except Exception as err:  # noqa: BLE001 - the cache is an optimisation
            _LOGGER.warning("Could not cache the clone prompt in %s (it is kept in memory): "
                            "%s: %s", self.cache_dir, type(err).__name__, str(err)[:200])
        finally:
            if tmp is not None:
                with_suppressed_unlink(tmp)


def _cache_problem(data, key: str, identity: str, source: CloneSource, model) -> str | None:
    """What is wrong with a loaded cache file's content (None: nothing)."""
    import torch

    if not isinstance(data, dict):
        return "not a clone prompt"
    if data.get("version") != CACHE_VERSION or data.get("key") != key:
        return "made by another version or for another voice"
    if data.get("identity") != identity:
        return "made with other weights"
    embedding, codes, text = (data.get(k) for k in ("speaker_embedding", "ref_codes",
                                                    "ref_text"))
    talker = model.config.talker_config
    if not isinstance(embedding, torch.Tensor) or not embedding.is_floating_point() \
            or tuple(embedding.shape) != (talker.hidden_size,):
        return "speaker embedding of the wrong kind or shape"
    if not bool(torch.isfinite(embedding).all()):
        return "speaker embedding not finite"
    if text != (source.transcript or None):
        return "made for another transcript"
    if source.transcript:
        groups = talker.num_code_groups
        codebook = talker.code_predictor_config.vocab_size
        if not isinstance(codes, torch.Tensor) or codes.dtype != torch.long \
                or codes.dim() != 2 or codes.shape[1] != groups or codes.shape[0] < 1:
            return "reference codes of the wrong kind or shape"
        if int(codes.min()) < 0 or int(codes.max()) >= codebook:
            return "reference codes out of range"
    elif codes is not None:
        return "reference codes without a transcript"
    if data.get("checksum") != tensor_digest(embedding, codes):
        return "checksum mismatch"
    return None


def _dtype(module) -> str:
    try:
        return str(next(module.parameters()).dtype)
    except (AttributeError, StopIteration):
        return "none"


def with_suppressed_unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
