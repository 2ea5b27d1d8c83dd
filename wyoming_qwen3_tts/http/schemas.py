"""The request and response bodies (pydantic models), as the OpenAPI document shows them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .audio import FORMATS


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


class VoiceRef(BaseModel):
    id: str = Field(max_length=200)


class SpeechRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field("tts-1", max_length=500, description=(
        "tts-1, tts-1-hd, gpt-4o-mini-tts, gpt-4o-tts or qwen3-tts (the voice picks the "
        "checkpoint), or a configured checkpoint"))
    input: str = Field(max_length=100_000, description="the text to speak (at most "
                       "--max-text-chars characters)")
    voice: str | VoiceRef | None = Field(None, description="any voice of GET /v1/audio/voices; "
                                         "none: the server's default voice")
    response_format: Literal["mp3", "opus", "aac", "flac", "wav", "pcm"] = Field(
        "mp3", description="pcm is raw 24 kHz 16-bit little-endian mono; aac is refused")
    speed: float = Field(1.0, ge=0.25, le=4.0, description="time-stretched per sentence")
    instructions: str | None = Field(None, max_length=4096, description=(
        "how to speak: replaces a built-in voice's style (1.7B CustomVoice checkpoints only) "
        "and is added to a designed voice's description; ignored for cloned voices and 0.6B "
        "CustomVoice checkpoints (the X-Instructions-Ignored header says so)"))
    language: str | None = Field(None, max_length=40, description="auto or a model language "
                                 "(english, ...) or code (en); default: detected per sentence")
    stream_format: Literal["audio", "sse"] | None = Field(None, description="only audio")


class VoiceInfo(BaseModel):
    id: str
    name: str
    kind: Literal["builtin", "designed", "cloned"]
    model: str
    description: str
    languages: list[str]
    language_codes: list[str]
    editable: bool
    default: bool
    instructions: str | None = None
    transcript: str | None = None


class VoiceList(BaseModel):
    voices: list[VoiceInfo]


class ModelInfo(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "qwen3-tts"
    kind: str | None = None
    languages: list[str] = Field(default_factory=list)
    loaded: bool | None = None
    follows_instructions: bool | None = None


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelInfo]


class SimpleModel(BaseModel):
    id: str
    name: str


class SimpleModelList(BaseModel):
    models: list[SimpleModel]


class DesignRequest(BaseModel):
    name: str = Field(max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
    description: str = Field(max_length=4000, description="the voice described in words")
    model: str | None = Field(None, max_length=500)


class StyleRequest(BaseModel):
    name: str = Field(max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
    speaker: str = Field(max_length=100, description="a built-in speaker (Ryan, Vivian, ...)")
    instructions: str | None = Field(None, max_length=4000, description="how to speak")
    model: str | None = Field(None, max_length=500)


class RenameRequest(BaseModel):
    name: str = Field(max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


class Deleted(BaseModel):
    deleted: str


class Limits(BaseModel):
    max_text_chars: int
    max_upload_bytes: int
    min_recording_seconds: float
    max_recording_seconds: float
    max_voices: int


class Info(BaseModel):
    version: str
    loaded: bool
    default_voice: str | None
    models: list[ModelInfo]
    formats: list[str]
    limits: Limits
    voices_dir_writable: bool


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody} for status in (400, 401, 403, 404, 409, 413, 415, 429, 503)}
AUDIO_CONTENT = {fmt.media_type: {"schema": {"type": "string", "format": "binary"}}
                 for fmt in FORMATS.values()}
