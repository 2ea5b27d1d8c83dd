"""The HTTP application: OpenAI-compatible speech, voice management, the web page.

Endpoints (the OpenAPI document is at `/openapi.json`):

- `POST /v1/audio/speech`: OpenAI's speech request (`model`, `input`, `voice`,
  `response_format`, `speed`, `instructions`; `language` added).  The answer is streamed
  (chunked) and its first bytes leave when the first sentence's first audio exists; a request
  that fails before any audio gets an error status and body, one that fails later ends without
  its final chunk (a truncated body, never a short "complete" file).
- `GET /v1/audio/voices`, `GET /v1/models`, `GET /v1/models/{id}`, `GET /v1/audio/models`:
  what there is (voices with kind, checkpoint and languages).
- `GET /api/info`, `GET /api/voices`, `POST /api/voices/clone` (multipart), `POST
  /api/voices/design`, `POST /api/voices/style`, `PATCH /api/voices/{name}` (rename),
  `DELETE /api/voices/{name}`, `GET /api/voices/{name}/preview`, `GET
  /api/voices/{name}/reference`.
- `GET /`: the web page.

`model` names: OpenAI's (`tts-1`, `tts-1-hd`, `gpt-4o-mini-tts`, `gpt-4o-tts`) and
`qwen3-tts` leave the choice to the voice (each voice is served by its own checkpoint); a
configured checkpoint (its `--model` value or the last part of it, any case) asks for that one,
and a voice of another checkpoint is then an error.

Access (`HttpSettings`): with an API key every request needs `Authorization: Bearer KEY` (or
HTTP Basic with the key as password, which browsers ask for by themselves), except requests
from a trusted proxy address (Home Assistant's ingress, which has authenticated the user
already).  With trusted proxies and no key, other addresses are refused.  Errors have OpenAI's
shape: `{"error": {"message", "type", "param", "code"}}`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, File, Form, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.security import HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..contract import BYTES_PER_SECOND, MIN_REFERENCE_SECONDS, SAMPLE_RATE
from ..server.catalog import Catalog, Voice, normalize
from ..server.languages import codes_for
from ..server.speech import Failure, Service, Speech
from ..server.voice_folders import BUILTIN, CLONED, DESIGNED
from ..server.worker import Lane
from .access import MAX_UPLOAD_BYTES, Access, BodyLimit
from .audio import (
    FORMATS,
    MAX_RECORDING_SECONDS,
    REFUSED_FORMATS,
    AudioFormatError,
    Encoder,
    RecordingError,
    audio_format,
    read_recording,
)
from .errors import STATUS, ApiError, error_response
from .responses import Answering, SpeechResponse, pcm_pieces
from .schemas import (
    AUDIO_CONTENT,
    ERRORS,
    Deleted,
    DesignRequest,
    ErrorBody,
    Info,
    Limits,
    ModelInfo,
    ModelList,
    RenameRequest,
    SimpleModel,
    SimpleModelList,
    SpeechRequest,
    StyleRequest,
    VoiceInfo,
    VoiceList,
    VoiceRef,
)
from .settings import HttpSettings
from .voices import (
    VoiceError,
    VoiceStore,
    clean_text,
    cloned_voice,
    designed_voice,
    styled_voice,
)

_LOGGER = logging.getLogger(__name__)

OPENAI_MODELS = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts", "gpt-4o-tts")
OWN_MODEL = "qwen3-tts"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_ -]{0,63}$"  # catalog names (spaces mean underscores)
PREVIEW_TEXT = "Hello! This is how I sound."
BEARER = HTTPBearer(auto_error=False, description="the server's API key (--http-api-key)")
VoiceName = Annotated[str, PathParam(max_length=64, pattern=NAME_PATTERN)]



def checkpoint_id(model: str) -> str:
    """How a configured checkpoint is named to clients: a repo id as it is, a local folder by
    its last part (no paths in answers)."""
    if model.count("/") == 1 and not model.startswith((".", "/", "~")):
        return model
    return Path(model).name or model


def _follows_instructions(catalog: Catalog, model: str) -> bool | None:
    summary = catalog.checkpoints[model].summary
    if summary is None:
        return None
    if summary.model_type == "base":
        return False
    return not (summary.model_type == "custom_voice" and summary.size == "0b6")


# -- the application ---------------------------------------------------------------------------
def create_app(service: Service, store: VoiceStore, settings: HttpSettings) -> FastAPI:
    catalog = service.catalog
    answering = Answering()
    def documented(_credentials: Annotated[Any, Depends(BEARER)]) -> None:
        """Only puts the bearer scheme in the OpenAPI document; `Access` checks the key."""

    app = FastAPI(title="Qwen3-TTS", version=__version__, docs_url=None, redoc_url=None,
                  openapi_url="/openapi.json", dependencies=[Depends(documented)],
                  description="OpenAI-compatible speech and voice management for the "
                              "Qwen3-TTS Wyoming server.")
    app.state.answering = answering
    app.add_middleware(BodyLimit)
    app.add_middleware(Access, settings=settings)  # outermost: before anything is read

    @app.exception_handler(ApiError)
    async def on_api_error(_request, err: ApiError):
        return error_response(err.status, err.message, err.code, err.param, err.headers)

    @app.exception_handler(VoiceError)
    async def on_voice_error(_request, err: VoiceError):
        return error_response(err.status, str(err), err.code)

    @app.exception_handler(RecordingError)
    async def on_recording_error(_request, err: RecordingError):
        return error_response(err.status, str(err), "invalid-recording", "file")

    @app.exception_handler(RequestValidationError)
    async def on_invalid(_request, err: RequestValidationError):
        errors = err.errors()
        first = errors[0] if errors else {}
        where = ".".join(str(part) for part in first.get("loc", ())[1:]) or None
        message = first.get("msg", "invalid request")
        return error_response(400, f"{where}: {message}" if where else message,
                               "invalid-request", where)

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(_request, err: StarletteHTTPException):
        return error_response(err.status_code, str(err.detail), None, None,
                               getattr(err, "headers", None))

    @app.exception_handler(Exception)
    async def on_unexpected(_request, err: Exception):
        _LOGGER.exception("HTTP request failed")
        return error_response(500, f"internal error: {type(err).__name__}", "internal-error")

    # -- helpers ------------------------------------------------------------------------------
    def default_voice() -> str | None:
        ready = service.synthesizer.ready
        if ready is not None and ready.done() and ready.exception() is None:
            return ready.result().default_voice
        found = catalog.default_voice(settings.configured_voice)
        return found.name if found is not None else None

    def voice_info(voice: Voice, default: str | None) -> VoiceInfo:
        return VoiceInfo(id=voice.name, name=voice.name, kind=voice.kind,  # type: ignore[arg-type]
                         model=checkpoint_id(voice.model), description=voice.description,
                         languages=list(voice.languages),
                         language_codes=codes_for(voice.languages),
                         editable=voice.folder is not None,
                         default=default is not None and voice.key == normalize(default),
                         instructions=voice.instruct if voice.folder is not None else None,
                         transcript=voice.transcript)

    def voice_list() -> VoiceList:
        default = default_voice()
        return VoiceList(voices=[voice_info(v, default) for v in catalog.voices])

    def model_infos() -> list[ModelInfo]:
        infos = [ModelInfo(id=name, kind="alias", languages=list(catalog.languages))
                 for name in (*OPENAI_MODELS, OWN_MODEL)]
        for checkpoint in catalog.checkpoints.values():
            summary = checkpoint.summary
            infos.append(ModelInfo(
                id=checkpoint_id(checkpoint.model),
                kind=summary.model_type if summary else None,
                languages=list(summary.languages) if summary else [],
                loaded=checkpoint.loaded,
                follows_instructions=_follows_instructions(catalog, checkpoint.model)))
        return infos

    def find_checkpoint(model: str) -> str | None:
        """None: any checkpoint (the voice decides); else the configured --model value."""
        wanted = model.strip().lower()
        if wanted in ("", OWN_MODEL, *OPENAI_MODELS):
            return None
        for configured in catalog.checkpoints:
            if wanted in (configured.lower(), checkpoint_id(configured).lower(),
                          Path(configured).name.lower()):
                return configured
        names = ", ".join([*OPENAI_MODELS, OWN_MODEL,
                           *(checkpoint_id(m) for m in catalog.checkpoints)])
        raise ApiError(400, f"unknown model {model[:100]!r}; models: {names}",
                       "model_not_found", "model")

    def pick_voice(name: str | None, checkpoint: str | None) -> tuple[Voice | None, str | None]:
        """(the voice, the name to ask for); (None, name) while the voices are not known yet
        (the router checks the name once the model is loaded)."""
        if name:
            voice = catalog.voice(name)
            if voice is None:
                if not catalog.known:
                    return None, clean_text(name)[:200]
                raise ApiError(400, catalog.unknown_voice(name[:100]), "unknown-voice", "voice")
            if checkpoint is not None and voice.model != checkpoint:
                raise ApiError(400, f"voice {voice.name} is served by "
                               f"{checkpoint_id(voice.model)}, not by "
                               f"{checkpoint_id(checkpoint)}", "voice-not-in-model", "voice")
            return voice, voice.name
        default = default_voice()
        voice = catalog.voice(default) if default else None
        if checkpoint is not None and (voice is None or voice.model != checkpoint):
            own = catalog.voices_of(checkpoint)
            if not own:
                raise ApiError(400, f"{checkpoint_id(checkpoint)} has no voices yet",
                               "no-voice", "voice")
            voice = own[0]
        return voice, voice.name if voice is not None else None

    def instruction(voice: Voice | None, instructions: str | None
                    ) -> tuple[str | None, str | None]:
        """(instruct for the engine, why the instructions are ignored)."""
        text = clean_text(instructions or "")[:4096]
        if not text or voice is None:
            return None, ("no voice known yet" if text else None)
        if voice.kind == CLONED:
            return None, "cloned voices take no instructions"
        if voice.kind == DESIGNED:
            return f"{voice.instruct or ''} {text}".strip(), None
        if _follows_instructions(catalog, voice.model) is False:
            return None, f"{checkpoint_id(voice.model)} does not follow instructions (0.6B)"
        return text, None

    async def speak(request: Request, text: str, voice: Voice | None, voice_name: str | None,
                    language: str | None, response_format: str, speed: float,
                    instruct: str | None, ignored: str | None) -> SpeechResponse:
        if service.stopping:
            raise ApiError(503, "the server is shutting down", "shutting-down")
        try:
            fmt = audio_format(response_format)
        except AudioFormatError as err:
            raise ApiError(400, str(err), "unsupported-format", "response_format") from None
        peer = request.client.host if request.client else "local"
        speech = Speech(service, Lane(f"http {peer}"), streaming=False,
                        voice=voice_name, language=clean_text(language or "") or None,
                        capacity=int(service.settings.max_unread_seconds * BYTES_PER_SECOND),
                        instruct=instruct, peer=peer)
        speech.say(clean_text(text))
        pieces = pcm_pieces(speech, speed)
        try:
            first = await anext(pieces, None)
        except BaseException:
            speech.cancel()
            speech.done()
            raise
        if first is None:
            await pieces.aclose()
            speech.done()
            failure = speech.failure or Failure("no-audio", "no audio was produced")
            status = STATUS.get(failure.code, 400)
            raise ApiError(status, failure.text, failure.code,
                           "input" if failure.code in ("empty-text", "text-too-long") else None)
        headers = {"Cache-Control": "no-store", "X-Sample-Rate": str(SAMPLE_RATE)}
        if voice is not None:
            headers["X-Voice"] = voice.name
        if ignored:
            headers["X-Instructions-Ignored"] = ignored.encode("ascii", "replace").decode()
        return SpeechResponse(speech, pieces, first, time.monotonic(), Encoder(fmt), answering,
                              settings.write_grace_seconds, headers)

    # -- OpenAI-compatible ---------------------------------------------------------------------
    @app.post("/v1/audio/speech", response_class=SpeechResponse, status_code=200,
              tags=["speech"],
              responses={200: {"content": AUDIO_CONTENT, "description": "the audio, streamed"},
                         **ERRORS, 500: {"model": ErrorBody}})
    async def create_speech(body: SpeechRequest, request: Request):
        """Speak `input` (OpenAI's speech API)."""
        if body.stream_format == "sse":
            raise ApiError(400, "stream_format sse is not offered: the audio itself is "
                           "streamed (chunked); use stream_format audio", "unsupported",
                           "stream_format")
        checkpoint = find_checkpoint(body.model)
        name = body.voice.id if isinstance(body.voice, VoiceRef) else body.voice
        voice, voice_name = pick_voice(name, checkpoint)
        instruct, ignored = instruction(voice, body.instructions)
        if ignored:
            _LOGGER.info("Instructions ignored: %s", ignored)
        return await speak(request, body.input, voice, voice_name, body.language,
                           body.response_format, body.speed, instruct, ignored)

    @app.get("/v1/audio/voices", response_model=VoiceList, tags=["speech"])
    async def list_audio_voices():
        """Every voice (built-in, designed, cloned) with its checkpoint and languages."""
        return voice_list()

    @app.get("/v1/models", response_model=ModelList, tags=["speech"])
    async def list_models():
        """The accepted `model` names: OpenAI's, qwen3-tts and the configured checkpoints."""
        return ModelList(data=model_infos())

    @app.get("/v1/models/{model_id:path}", response_model=ModelInfo, tags=["speech"],
             responses={404: {"model": ErrorBody}})
    async def get_model(model_id: Annotated[str, PathParam(max_length=500)]):
        for info in model_infos():
            if info.id.lower() == model_id.lower():
                return info
        raise ApiError(404, f"no model {model_id[:100]!r}", "model_not_found")

    @app.get("/v1/audio/models", response_model=SimpleModelList, tags=["speech"])
    async def list_audio_models():
        """The model names, as Open WebUI asks for them."""
        return SimpleModelList(models=[SimpleModel(id=m.id, name=m.id) for m in model_infos()])

    # -- management ----------------------------------------------------------------------------
    @app.get("/api/info", response_model=Info, tags=["voices"])
    async def info():
        """The server: checkpoints, default voice, formats and limits."""
        writable = False
        if store.voices_dir is not None:
            folder = store.voices_dir if store.voices_dir.exists() else store.voices_dir.parent
            import os

            writable = os.access(folder, os.W_OK)
        return Info(version=__version__, loaded=catalog.loaded, default_voice=default_voice(),
                    models=[m for m in model_infos() if m.kind != "alias"],
                    formats=[name for name in FORMATS if name not in REFUSED_FORMATS],
                    limits=Limits(max_text_chars=service.settings.max_text_chars,
                                  max_upload_bytes=MAX_UPLOAD_BYTES,
                                  min_recording_seconds=MIN_REFERENCE_SECONDS,
                                  max_recording_seconds=MAX_RECORDING_SECONDS,
                                  max_voices=store.max_voices),
                    voices_dir_writable=writable)

    @app.get("/api/voices", response_model=VoiceList, tags=["voices"])
    async def list_voices():
        return voice_list()

    def model_param(model: str | None) -> str | None:
        if not model or not model.strip():
            return None
        found = find_checkpoint(model)
        if found is None:
            raise ApiError(400, "name a configured checkpoint (or none), not an alias",
                           "unknown-model", "model")
        return found

    created = {201: {"model": VoiceInfo}, **ERRORS, 500: {"model": ErrorBody}}

    @app.post("/api/voices/clone", status_code=201, response_model=VoiceInfo, tags=["voices"],
              responses=created)
    async def create_cloned_voice(
        name: Annotated[str, Form(max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")],
        file: Annotated[UploadFile, File(description="a recording: WAV, FLAC, Ogg, MP3 ... "
                                                     "(recognised by its content)")],
        transcript: Annotated[str | None, Form(max_length=4000)] = None,
        model: Annotated[str | None, Form(max_length=500)] = None,
    ):
        """A cloned voice from a recording of 1 to 60 s (5 to 10 s of one person is best) and,
        for a closer clone, its transcript."""
        checkpoint = store.checkpoint_for(CLONED, model_param(model))
        data = await file.read(MAX_UPLOAD_BYTES + 1)
        if len(data) > MAX_UPLOAD_BYTES:
            raise ApiError(413, f"the recording is larger than {MAX_UPLOAD_BYTES} bytes",
                           "too-large", "file")
        recording = await asyncio.to_thread(read_recording, data)
        wav = await asyncio.to_thread(recording.wav_bytes)
        new = cloned_voice(name, wav, transcript, checkpoint if model else None)
        voice = await asyncio.to_thread(store.create, new)
        return JSONResponse(voice_info(voice, default_voice()).model_dump(), status_code=201)

    @app.post("/api/voices/design", status_code=201, response_model=VoiceInfo,
              tags=["voices"], responses=created)
    async def create_designed_voice(body: DesignRequest):
        """A designed voice: the voice described in words (a VoiceDesign checkpoint)."""
        checkpoint = store.checkpoint_for(DESIGNED, model_param(body.model))
        new = designed_voice(body.name, body.description, checkpoint if body.model else None)
        voice = await asyncio.to_thread(store.create, new)
        return JSONResponse(voice_info(voice, default_voice()).model_dump(), status_code=201)

    @app.post("/api/voices/style", status_code=201, response_model=VoiceInfo, tags=["voices"],
              responses=created)
    async def create_styled_voice(body: StyleRequest):
        """A built-in speaker with a speaking style (a CustomVoice checkpoint; only the 1.7B
        ones follow the style)."""
        checkpoint = store.checkpoint_for(BUILTIN, model_param(body.model))
        speaker = store.speaker_for(checkpoint, clean_text(body.speaker))
        new = styled_voice(body.name, speaker, body.instructions,
                           checkpoint if body.model else None)
        voice = await asyncio.to_thread(store.create, new)
        return JSONResponse(voice_info(voice, default_voice()).model_dump(), status_code=201)

    @app.patch("/api/voices/{name}", response_model=VoiceInfo, tags=["voices"],
               responses={**ERRORS, 500: {"model": ErrorBody}})
    async def rename_voice(name: VoiceName, body: RenameRequest):
        """Rename a designed, cloned or styled voice (its folder)."""
        voice = await asyncio.to_thread(store.rename, name, body.name)
        return voice_info(voice, default_voice())

    @app.delete("/api/voices/{name}", response_model=Deleted, tags=["voices"],
                responses={**ERRORS, 500: {"model": ErrorBody}})
    async def delete_voice(name: VoiceName):
        """Delete a designed, cloned or styled voice (its folder)."""
        voice = await asyncio.to_thread(store.delete, name)
        return Deleted(deleted=voice.name)

    @app.get("/api/voices/{name}/preview", response_class=SpeechResponse, status_code=200,
             tags=["voices"],
             responses={200: {"content": AUDIO_CONTENT}, **ERRORS, 500: {"model": ErrorBody}})
    async def preview_voice(
        request: Request, name: VoiceName,
        text: Annotated[str, Query(max_length=2000)] = PREVIEW_TEXT,
        response_format: Annotated[Literal["mp3", "opus", "flac", "wav", "pcm"],
                                   Query()] = "mp3",
        language: Annotated[str | None, Query(max_length=40)] = None,
    ):
        """The voice speaking `text` (streamed, like /v1/audio/speech)."""
        voice = catalog.voice(name)
        if voice is None:
            raise ApiError(404, catalog.unknown_voice(name), "unknown-voice")
        return await speak(request, text or PREVIEW_TEXT, voice, voice.name, language,
                           response_format, 1.0, None, None)

    @app.get("/api/voices/{name}/reference", tags=["voices"], response_class=FileResponse,
             responses={200: {"content": {"audio/wav": {}}}, **ERRORS})
    async def voice_reference(name: VoiceName):
        """A cloned voice's recording."""
        voice = catalog.voice(name)
        if voice is None or voice.kind != CLONED or voice.reference is None:
            raise ApiError(404, f"no cloned voice {name!r}", "unknown-voice")
        if not voice.reference.is_file():
            raise ApiError(404, f"the recording of {voice.name} is gone", "unknown-voice")
        media = {".wav": "audio/wav", ".flac": "audio/flac", ".ogg": "audio/ogg",
                 ".mp3": "audio/mpeg"}.get(voice.reference.suffix.lower(),
                                           "application/octet-stream")
        return FileResponse(voice.reference, media_type=media,
                            headers={"Cache-Control": "no-store"})

    # -- the page ------------------------------------------------------------------------------
    page = resources.files(__package__).joinpath("page.html").read_text(encoding="utf-8")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index():
        return HTMLResponse(page, headers={"Cache-Control": "no-store",
                                           "X-Content-Type-Options": "nosniff"})

    return app


