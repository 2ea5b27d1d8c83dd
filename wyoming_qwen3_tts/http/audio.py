"""Audio for the HTTP front door: response formats, `speed`, and uploaded recordings.

- **Response formats** are encoded by libsndfile (through soundfile) while the audio is being
  generated: each PCM chunk goes into an encoder writing to a `_Sink`, and whatever encoded
  bytes it has produced leave at once.  Encoders that go back at the end to fill in a header
  (the WAV and FLAC lengths, MP3's info frame) cannot do so for bytes already sent, so a
  streamed file says "length unknown" (WAV data size 0, FLAC total samples 0), which decoders
  read to the end.  MP3 goes through an OS pipe instead, so libsndfile writes no info frame
  (it would send a blank placeholder first, which decoders stumble over), at a constant bit
  rate so its length is known without one; Ogg Opus pages are flushed every OPUS_PAGE_MS.
  `pcm` is the raw 24 kHz 16-bit mono PCM itself.  `aac` is refused: libsndfile has no AAC encoder.
- **Speed** other than 1 is applied with librosa's phase-vocoder time stretch, one sentence at
  a time (so a stretched answer still starts after its first sentence, and sentence
  boundaries, where the speech pauses anyway, are the only seams).  Its first call compiles
  librosa's numba code (about 2.5 s, and about 0.2 GB of RSS kept for the process's life), so it is
  paid by the first request with a speed, not at start by every server with HTTP on.
- **Uploaded recordings** are recognised by their content (libsndfile reads the header; the
  file name and content type are ignored), bounded in size and duration, checked (finite
  samples, at least MIN_REFERENCE_SECONDS, not silent) and stored as a 16-bit WAV.
"""

from __future__ import annotations

import fcntl
import io
import logging
import os
from dataclasses import dataclass

import numpy as np

from ..contract import CHANNELS, MIN_REFERENCE_SECONDS, SAMPLE_RATE

_LOGGER = logging.getLogger(__name__)

OPUS_PAGE_MS = 100.0  # Ogg page latency for streamed Opus
MP3_COMPRESSION = 0.5  # libsndfile's 0 (best) .. 1 (smallest); 0.5 is ~80 kbit/s at 24 kHz mono
_SFC_SET_OGG_PAGE_LATENCY_MS = 0x1302  # sndfile.h (libsndfile 1.2)

MAX_RECORDING_SECONDS = 60.0  # the most --max-reference-seconds can use
MAX_RECORDING_CHANNELS = 8
MAX_RECORDING_RATE = 192_000
MIN_PEAK = 1e-4  # an upload quieter than this everywhere is silence


class AudioFormatError(ValueError):
    """A response format this server cannot produce."""


class RecordingError(ValueError):
    """An uploaded recording that cannot be used (`status`: the HTTP status to answer)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class AudioFormat:
    name: str
    media_type: str
    container: str | None  # libsndfile major format; None: raw PCM
    subtype: str | None


FORMATS = {
    "mp3": AudioFormat("mp3", "audio/mpeg", "MP3", "MPEG_LAYER_III"),
    "opus": AudioFormat("opus", "audio/ogg; codecs=opus", "OGG", "OPUS"),
    "flac": AudioFormat("flac", "audio/flac", "FLAC", "PCM_16"),
    "wav": AudioFormat("wav", "audio/wav", "WAV", "PCM_16"),
    "pcm": AudioFormat("pcm", "audio/pcm", None, None),
}
REFUSED_FORMATS = {"aac": "aac is not offered: libsndfile, which encodes the audio here, has no "
                          "AAC encoder; use mp3, opus, flac, wav or pcm"}


def audio_format(name: str) -> AudioFormat:
    """The format called `name`; AudioFormatError if it cannot be produced here."""
    if name in REFUSED_FORMATS:
        raise AudioFormatError(REFUSED_FORMATS[name])
    found = FORMATS.get(name)
    if found is None:
        raise AudioFormatError(f"unknown response_format {name!r}; formats: "
                               + ", ".join(FORMATS))
    if found.container is not None:
        import soundfile

        if found.container not in soundfile.available_formats():
            raise AudioFormatError(f"{name} needs a libsndfile with {found.container} support "
                                   f"(this one is {soundfile.__libsndfile_version__})")
    return found


class _Sink:
    """A write-only file for libsndfile that hands out what was written since the last `take`.

    Bytes already taken are gone: a write that goes back into them (a header filled in when
    the encoder closes) is dropped, so the client keeps the "length unknown" header it got."""

    def __init__(self) -> None:
        self._data = bytearray()  # bytes from _base on
        self._base = 0
        self._pos = 0

    def write(self, data) -> int:
        data = bytes(data)
        written = len(data)
        start, self._pos = self._pos, self._pos + written
        if self._pos <= self._base:
            return written
        if start < self._base:
            data, start = data[self._base - start:], self._base
        offset = start - self._base
        if offset > len(self._data):
            self._data.extend(bytes(offset - len(self._data)))
        self._data[offset:offset + len(data)] = data
        return written

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        end = self._base + len(self._data)
        self._pos = {io.SEEK_SET: offset, io.SEEK_CUR: self._pos + offset,
                     io.SEEK_END: end + offset}[whence]
        return self._pos

    def tell(self) -> int:
        return self._pos

    def read(self, size: int = -1) -> bytes:  # never needed while writing
        return b""

    def take(self) -> bytes:
        out = bytes(self._data)
        self._base += len(out)
        self._data.clear()
        return out


class _PipeSink:
    """The read end of an OS pipe whose write end libsndfile writes to (MP3: see above).
    Nothing waits: the encoder is fed in pieces small enough that their output always fits
    the pipe, and what it wrote is read back at once."""

    PIECE = 4608  # samples per write: about 2 KB of MP3, far below the pipe's 64 KiB

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        flags = fcntl.fcntl(self.read_fd, fcntl.F_GETFL)
        fcntl.fcntl(self.read_fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)

    def take(self) -> bytes:
        out = bytearray()
        while True:
            try:
                data = os.read(self.read_fd, 65536)
            except BlockingIOError:
                break
            if not data:
                break
            out += data
        return bytes(out)

    def close(self) -> None:
        if self.read_fd >= 0:
            os.close(self.read_fd)
            self.read_fd = -1


class Encoder:
    """PCM (24 kHz, 16-bit, mono) in, encoded bytes out as soon as the encoder has them."""

    def __init__(self, fmt: AudioFormat) -> None:
        self.format = fmt
        self._file = None
        self._sink: _Sink | _PipeSink = _Sink()
        if fmt.container is None:
            return
        import soundfile

        if fmt.container == "MP3":
            self._sink = pipe = _PipeSink()
            try:
                self._file = soundfile.SoundFile(
                    pipe.write_fd, "w", SAMPLE_RATE, CHANNELS, fmt.subtype,
                    format=fmt.container, closefd=True, bitrate_mode="CONSTANT",
                    compression_level=MP3_COMPRESSION)
            except Exception:
                os.close(pipe.write_fd)
                pipe.close()
                raise
            return
        self._file = soundfile.SoundFile(self._sink, "w", SAMPLE_RATE, CHANNELS, fmt.subtype,
                                         format=fmt.container)
        if fmt.container == "OGG":
            _set_ogg_page_latency(self._file, OPUS_PAGE_MS)

    def encode(self, pcm: bytes) -> bytes:
        if self._file is None:
            return pcm
        samples = np.frombuffer(pcm, dtype="<i2")
        if isinstance(self._sink, _PipeSink):
            out = bytearray()
            for start in range(0, len(samples), _PipeSink.PIECE):
                self._file.write(samples[start:start + _PipeSink.PIECE])
                out += self._sink.take()
            return bytes(out)
        if len(samples):
            self._file.write(samples)
        return self._sink.take()

    def finish(self) -> bytes:
        if self._file is None:
            return b""
        self._file.close()
        out = self._sink.take()
        self.close()
        return out

    def close(self) -> None:
        if self._file is not None and not self._file.closed:
            self._file.close()
        if isinstance(self._sink, _PipeSink):
            self._sink.close()


def _set_ogg_page_latency(file, milliseconds: float) -> None:
    """libsndfile's SFC_SET_OGG_PAGE_LATENCY_MS (soundfile has no wrapper for it): without it
    Ogg pages, and so the first bytes of a streamed Opus answer, wait for about a second of
    audio.  Failing is harmless (coarser pages)."""
    try:
        from soundfile import _ffi, _snd

        value = _ffi.new("double*", milliseconds)
        _snd.sf_command(file._file, _SFC_SET_OGG_PAGE_LATENCY_MS, value, _ffi.sizeof("double"))
    except Exception as err:  # noqa: BLE001 - an optimisation only
        _LOGGER.debug("Could not set the Ogg page latency: %s", err)


def encode_all(fmt: AudioFormat, pcm: bytes) -> bytes:
    encoder = Encoder(fmt)
    return encoder.encode(pcm) + encoder.finish()


# -- speed ----------------------------------------------------------------------------------
def stretch(pcm: bytes, speed: float) -> bytes:
    """`pcm` played `speed` times faster (librosa's phase vocoder; pitch unchanged)."""
    if speed == 1.0 or not pcm:
        return pcm
    import librosa

    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
    stretched = librosa.effects.time_stretch(samples, rate=speed, n_fft=512)
    return (np.clip(stretched, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


# -- uploaded recordings -------------------------------------------------------------------
@dataclass
class Recording:
    samples: np.ndarray  # float32 [frames, channels]
    rate: int
    format: str  # what libsndfile recognised ("WAV", "FLAC", "OGG", "MP3", ...)

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.rate

    def wav_bytes(self) -> bytes:
        import soundfile

        out = io.BytesIO()
        soundfile.write(out, self.samples, self.rate, subtype="PCM_16", format="WAV")
        return out.getvalue()


def read_recording(data: bytes) -> Recording:
    """Decode an uploaded recording, recognised by its content; RecordingError says why not."""
    import soundfile

    if not data:
        raise RecordingError("the recording is empty")
    try:
        info = soundfile.info(io.BytesIO(data))
    except Exception as err:  # LibsndfileError, RuntimeError, TypeError ...
        raise RecordingError("not a recording this server can read (WAV, FLAC, Ogg Vorbis or "
                             "Opus, MP3, AIFF ...; the web page converts other formats): "
                             f"{_short(err)}", status=415) from err
    if not 0 < info.channels <= MAX_RECORDING_CHANNELS:
        raise RecordingError(f"the recording has {info.channels} channels; at most "
                             f"{MAX_RECORDING_CHANNELS}")
    if not 1000 <= info.samplerate <= MAX_RECORDING_RATE:
        raise RecordingError(f"sample rate {info.samplerate} Hz is not supported")
    limit = int(MAX_RECORDING_SECONDS * info.samplerate)
    if 0 < info.frames < 2**62 and info.frames > limit * 1.05:  # header says too long
        raise RecordingError(_too_long(info.frames / info.samplerate))
    try:  # never more than the limit is decoded, whatever the header said
        samples, rate = soundfile.read(io.BytesIO(data), frames=limit + info.samplerate,
                                       dtype="float32", always_2d=True)
    except Exception as err:  # noqa: BLE001 - damaged data
        raise RecordingError(f"the recording cannot be decoded: {_short(err)}") from err
    if len(samples) > limit * 1.05:
        raise RecordingError(_too_long(len(samples) / rate))
    samples = samples[:limit]
    if not np.isfinite(samples).all():
        raise RecordingError("the recording holds invalid samples (NaN or infinity)")
    seconds = len(samples) / rate
    if seconds < MIN_REFERENCE_SECONDS:
        raise RecordingError(f"the recording is {seconds:.2f} s long; at least "
                             f"{MIN_REFERENCE_SECONDS:g} s of speech is needed")
    if float(np.abs(samples).max()) < MIN_PEAK:
        raise RecordingError("the recording is silent")
    return Recording(samples, int(rate), info.format)


def _too_long(seconds: float) -> str:
    return (f"the recording is {seconds:.0f} s long; at most {MAX_RECORDING_SECONDS:g} s "
            "(5 to 10 s of one person speaking is best)")


def _short(err: BaseException, limit: int = 160) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
