"""The command line: every option, its one default, and its environment variable.

Every option can also come from an environment variable QWEN3_TTS_<OPTION> (dashes become
underscores: QWEN3_TTS_SAMPLES_PER_CHUNK=2048); a flag given on the command line wins.  The
defaults written here are the only ones: the server's settings are built from the parsed
options (app.py), and the add-on's config.yaml must agree with them (tests/test_addon.py).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from . import __version__
from .contract import AUTO, DEFAULT_MAX_REFERENCE_SECONDS, DTYPES, MIN_REFERENCE_SECONDS
from .server.languages import LANGUAGES, to_model_language

ENV_PREFIX = "QWEN3_TTS_"
DEFAULT_MODEL = "Qwen/Qwen3-TTS-12Hz-0.6B-CustomVoice"
DEFAULT_ZEROCONF_NAME = "qwen3-tts"
DEFAULT_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def _default_data_dir() -> str:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(Path.home(), ".local", "share")
    return os.path.join(base, "wyoming-qwen3-tts")


def _env_name(flag: str) -> str:
    return ENV_PREFIX + flag.lstrip("-").replace("-", "_").upper()


class _Parser(argparse.ArgumentParser):
    """argparse whose options fall back to QWEN3_TTS_* environment variables."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.env_lists: dict[str, list[str]] = {}

    def option(self, flag: str, *, default=None, help: str, **kwargs) -> None:
        env = _env_name(flag)
        raw = os.environ.get(env)
        action = kwargs.get("action")
        if raw is not None:
            if action == "store_true":
                if raw.strip().lower() not in _TRUE + _FALSE:
                    self.error(f"{env}={raw!r}: expected 1/0, true/false, yes/no or on/off")
                default = raw.strip().lower() in _TRUE
            elif flag == "--zeroconf":
                value = raw.strip()
                default = (None if value.lower() in _FALSE
                           else kwargs["const"] if value.lower() in _TRUE else value)
            elif action == "append":
                # argparse would append command-line values to a list default: keep it aside
                self.env_lists[flag.lstrip("-").replace("-", "_")] = [
                    part.strip() for part in raw.split(",") if part.strip()]
            else:
                default = raw
        if action == "store_true" and default is None:
            default = False
        shown = "" if action == "store_true" or default is None else f" (default: {default})"
        text = f"{help}{shown} [env {env}]".replace("%", "%%")
        self.add_argument(flag, default=default, help=text, **kwargs)


def build_parser() -> _Parser:
    parser = _Parser(
        prog="wyoming-qwen3-tts",
        description="Wyoming protocol text-to-speech server for Qwen3-TTS, streaming on CPUs.",
        epilog="Every option can be set with the environment variable shown in brackets; "
               "flags take 1/0, true/false, yes/no or on/off.  --model takes a comma-separated "
               "list there.",
    )
    parser.option("--uri", default="tcp://0.0.0.0:10200",
                  help="where to listen: tcp://HOST:PORT, unix://PATH or stdio://")
    parser.option("--model", action="append", metavar="REPO_OR_FOLDER",
                  help=f"Hugging Face repo id or local checkpoint folder; repeatable: the "
                       f"first is loaded at start and serves the default voice, the others "
                       f"when one of their voices is first asked for (default: {DEFAULT_MODEL})")
    parser.option("--data-dir", default=_default_data_dir(),
                  help="where downloaded models are kept")
    parser.option("--local-files-only", action="store_true",
                  help="never download: use only what is already in --data-dir")
    parser.option("--voices-dir", help="folder of designed and cloned voices, one folder per "
                                       "voice (default: DATA_DIR/voices)")
    parser.option("--voice", help="voice used when a request names none: a built-in speaker or "
                                  "a voice folder's name (default: Ryan if the first model has "
                                  "him, else its first voice)")
    parser.option("--max-reference-seconds", type=float, default=DEFAULT_MAX_REFERENCE_SECONDS,
                  help="cloned voices: use at most this much of the reference recording")
    parser.option("--max-loaded-models", type=int, default=0,
                  help="models kept loaded at once (least recently used ones are unloaded); "
                       "0 = as many as fit in the available memory")
    parser.option("--language", default=AUTO,
                  help="language to speak: auto (detect per sentence) or one of "
                       + ", ".join(LANGUAGES) + " (or its code, e.g. de)")
    parser.option("--dtype", default="auto", choices=DTYPES,
                  help="precision of the talker and code predictor: auto (per CPU, checked "
                       "against float32 at the first load), float32, bfloat16, int8, "
                       "int8-weight-only, int4 (code predictor 4-bit), int4-all")
    parser.option("--threads", type=int, default=0,
                  help="torch intra-op threads; 0 = all physical cores")
    parser.option("--interop-threads", type=int, default=0,
                  help="torch inter-op threads; 0 = torch's default")
    parser.option("--samples-per-chunk", type=int, default=1024,
                  help="samples per audio-chunk event")
    parser.option("--no-streaming", action="store_true",
                  help="do not offer text streaming (synthesize-start/chunk/stop); audio is "
                       "still sent as it is generated")
    parser.option("--zeroconf", nargs="?", const=DEFAULT_ZEROCONF_NAME, metavar="NAME",
                  help=f"announce the server over zeroconf/mDNS (tcp:// only), optionally "
                       f"under NAME (default name: {DEFAULT_ZEROCONF_NAME})")
    parser.option("--max-text-chars", type=int, default=2000,
                  help="longest text accepted per request (a stream's sentences are spoken "
                       "as they come, up to --max-stream-chars)")
    parser.option("--max-stream-chars", type=int, default=100_000,
                  help="longest text accepted per stream (synthesize-start to -stop)")
    parser.option("--max-connections", type=int, default=16,
                  help="client connections served at once; one more gets an error and is "
                       "closed")
    parser.option("--idle-timeout", type=float, default=300.0,
                  help="seconds after which a connection that sends nothing (and is not "
                       "being answered) is closed; 0 = never")
    parser.option("--max-queue", type=int, default=8,
                  help="requests in the server at once, all clients together (being spoken "
                       "or waiting); one more is answered with a queue-full error")
    parser.option("--max-connections-per-peer", type=int, default=0,
                  help="connections served at once from one address; 0 = half of "
                       "--max-connections")
    parser.option("--max-queue-per-peer", type=int, default=0,
                  help="requests in the server at once from one address; 0 = half of "
                       "--max-queue")
    parser.option("--max-unread-audio", type=float, default=30.0,
                  help="seconds of audio a client may leave unread; past that its request is "
                       "cancelled and it is disconnected")
    # the HTTP front door (wyoming_qwen3_tts/http): off unless --http is given
    parser.option("--http", metavar="URI",
                  help="also serve the OpenAI-compatible speech API, voice management and the "
                       "web page over HTTP: http://HOST:PORT (or tcp://HOST:PORT, "
                       "unix://PATH); off by default")
    parser.option("--http-api-key", metavar="KEY",
                  help="when set, every HTTP request needs 'Authorization: Bearer KEY' (or "
                       "HTTP Basic with KEY as the password), except from --http-trusted-proxy")
    parser.option("--http-trusted-proxy", metavar="ADDRESS[,ADDRESS]",
                  help="peer addresses that need no API key, such as Home Assistant's ingress "
                       "proxy (172.30.32.2); when set without --http-api-key, other addresses "
                       "are refused")
    parser.option("--no-normalize", action="store_true",
                  help="speak numbers, units, times and symbols as written instead of spelling "
                       "them out in the sentence's language")
    parser.option("--sentence-silence", type=float, default=0.0, metavar="SECONDS",
                  help="silence between the sentences of one answer")
    parser.option("--volume", type=float, default=1.0, metavar="FACTOR",
                  help="loudness factor for all audio (peaks are softly limited, never "
                       "clipped)")
    parser.option("--no-warmup", action="store_true",
                  help="skip the short warm-up synthesis after loading")
    parser.option("--debug", action="store_true", help="log DEBUG messages")
    parser.option("--log-format", default=DEFAULT_LOG_FORMAT, help="format of log lines")
    parser.add_argument("--version", action="version", version=__version__,
                        help="print the version and exit")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.model = args.model or parser.env_lists.get("model") or [DEFAULT_MODEL]
    args.data_dir = Path(args.data_dir).expanduser()
    args.voices_dir = (Path(args.voices_dir).expanduser() if args.voices_dir
                       else args.data_dir / "voices")
    language = to_model_language(args.language)
    if language is None:
        parser.error(f"--language {args.language!r}: expected auto or one of "
                     + ", ".join(LANGUAGES))
    args.language = language
    if args.dtype not in DTYPES:  # argparse does not check defaults from the environment
        parser.error(f"--dtype {args.dtype!r}: expected one of {', '.join(DTYPES)}")
    for name in ("threads", "interop_threads"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must be 0 or more")
    if args.samples_per_chunk < 1:
        parser.error("--samples-per-chunk must be at least 1")
    if not 0 <= args.sentence_silence <= 10:
        parser.error("--sentence-silence must be 0 to 10 (seconds)")
    if not 0 < args.volume <= 10:
        parser.error("--volume must be more than 0 and at most 10")
    if args.max_text_chars < 1:
        parser.error("--max-text-chars must be at least 1")
    if args.max_stream_chars < args.max_text_chars:
        parser.error("--max-stream-chars must be at least --max-text-chars")
    for name in ("max_connections_per_peer", "max_queue_per_peer"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must be 0 or more")
    for name in ("max_connections", "max_queue"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if not args.idle_timeout >= 0:
        parser.error("--idle-timeout must be 0 or more")
    if not 0 < args.max_unread_audio <= 3600:
        parser.error("--max-unread-audio must be more than 0 and at most 3600 (seconds)")
    if not MIN_REFERENCE_SECONDS <= args.max_reference_seconds <= 60:
        parser.error(f"--max-reference-seconds must be {MIN_REFERENCE_SECONDS:g} to 60")
    if args.max_loaded_models < 0:
        parser.error("--max-loaded-models must be 0 or more")
    if args.http:
        from .http import parse_http_uri  # the URI grammar only (no FastAPI import)

        try:
            parse_http_uri(args.http)
        except ValueError as err:
            parser.error(f"--http {err}")
    args.http_trusted_proxy = frozenset(
        part.strip() for part in (args.http_trusted_proxy or "").split(",") if part.strip())
    if args.zeroconf and not args.uri.startswith("tcp://"):
        parser.error("--zeroconf needs a tcp:// --uri")
    return args
