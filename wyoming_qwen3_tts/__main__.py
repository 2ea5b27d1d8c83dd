"""Command line: `python -m wyoming_qwen3_tts` / `wyoming-qwen3-tts`.

The server listens first and loads the model afterwards (in the synthesis thread), so
`describe` is answered from the first second; requests that arrive while the model loads wait
for it.  Every option can also come from an environment variable QWEN3_TTS_<OPTION> (dashes
become underscores: QWEN3_TTS_SAMPLES_PER_CHUNK=2048); a flag given on the command line wins.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from functools import partial
from pathlib import Path

from wyoming.server import AsyncServer, AsyncTcpServer

from . import __version__
from .catalog import Catalog, default_speaker, peek_checkpoint
from .handler import Qwen3TtsEventHandler, Service, Settings
from .languages import AUTO, LANGUAGES, LanguageDetector, to_model_language
from .synthesis import Loaded, Synthesizer

_LOGGER = logging.getLogger("wyoming_qwen3_tts")

ENV_PREFIX = "QWEN3_TTS_"
DEFAULT_MODEL = "Qwen/Qwen3-TTS-12Hz-0.6B-CustomVoice"
DEFAULT_ZEROCONF_NAME = "qwen3-tts"
DTYPES = ("auto", "float32", "bfloat16", "int8")
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
                  help=f"Hugging Face repo id or local checkpoint folder; repeatable, the first "
                       f"is served (default: {DEFAULT_MODEL})")
    parser.option("--data-dir", default=_default_data_dir(),
                  help="where downloaded models are kept")
    parser.option("--local-files-only", action="store_true",
                  help="never download: use only what is already in --data-dir")
    parser.option("--voices-dir", help="folder of extra (cloned) voices; accepted, not used yet")
    parser.option("--voice", help="voice used when a request names none (default: Ryan if "
                                  "the model has it, else its first speaker)")
    parser.option("--language", default=AUTO,
                  help="language to speak: auto (detect per sentence) or one of "
                       + ", ".join(LANGUAGES) + " (or its code, e.g. de)")
    parser.option("--dtype", default="auto", choices=DTYPES,
                  help="weights/compute type of the generator")
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
                  help="longest text accepted per request (or per stream)")
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
    if args.max_text_chars < 1:
        parser.error("--max-text-chars must be at least 1")
    if args.zeroconf and not args.uri.startswith("tcp://"):
        parser.error("--zeroconf needs a tcp:// --uri")
    return args


async def _stdio_streams() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Protocol streams on stdin/stdout, with file descriptor 1 moved to stderr first: the
    model code prints banners, which must not land in the event stream."""
    loop = asyncio.get_running_loop()
    protocol_out = os.fdopen(os.dup(sys.stdout.fileno()), "wb", buffering=0)
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    transport, protocol = await loop.connect_write_pipe(
        lambda: asyncio.streams.FlowControlMixin(loop=loop), protocol_out)
    return reader, asyncio.StreamWriter(transport, protocol, None, loop)


def load_engine(args: argparse.Namespace) -> Loaded:
    """Runs in the synthesis thread: load, check the options against the model, warm up."""
    from .engine import Engine

    model = args.model[0]
    if len(args.model) > 1:
        _LOGGER.warning("Serving only the first --model (%s) for now", model)
    engine = Engine.load(model, data_dir=args.data_dir, local_files_only=args.local_files_only,
                         dtype=args.dtype, threads=args.threads,
                         interop_threads=args.interop_threads)
    speaker = None
    if engine.model_type == "custom_voice":
        speaker = default_speaker(engine.speakers, args.voice)
        if speaker is None:
            raise ValueError(f"--voice {args.voice!r} is not a speaker of {model}: "
                             f"{', '.join(engine.speakers)}")
    elif args.voice:
        _LOGGER.warning("--voice %s ignored: %s has no built-in speakers", args.voice, model)
    if args.language != AUTO and args.language not in engine.languages:
        raise ValueError(f"--language {args.language} is not spoken by {model}")
    detector = LanguageDetector(engine.languages) if args.language == AUTO else None
    if not args.no_warmup:
        engine.warmup()
    return Loaded(engine=engine, default_speaker=speaker, detector=detector)


async def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO,
                        format=args.log_format, stream=sys.stderr, force=True)
    _LOGGER.debug(args)
    model = args.model[0]

    catalog = Catalog(model_name=model, streaming=not args.no_streaming)
    peeked = peek_checkpoint(model, args.data_dir)
    if peeked is not None:
        catalog.update(peeked.model_type, peeked.speakers, peeked.languages, loaded=False)
        _LOGGER.debug("Voices before loading (from %s): %s", peeked.source, peeked.speakers)
    synthesizer = Synthesizer(partial(load_engine, args))
    settings = Settings(samples_per_chunk=args.samples_per_chunk,
                        streaming=not args.no_streaming, max_text_chars=args.max_text_chars,
                        language=None if args.language == AUTO else args.language)
    service = Service(settings=settings, catalog=catalog, synthesizer=synthesizer)

    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stopping.set)

    # Listen first, load second: describe must be answered while the model loads.
    factory = partial(Qwen3TtsEventHandler, service)
    server = None
    stdio_task = None
    if args.uri.startswith("stdio://"):
        reader, writer = await _stdio_streams()
        stdio_task = asyncio.create_task(factory(reader, writer).run())
        stdio_task.add_done_callback(lambda _task: stopping.set())
    else:
        server = AsyncServer.from_uri(args.uri)
        await server.start(factory)
    _LOGGER.info("Listening on %s; loading %s", args.uri, model)

    announcement = None
    if args.zeroconf:
        from .discovery import Announcement

        assert isinstance(server, AsyncTcpServer)
        announcement = Announcement(args.zeroconf, server.host, server.port)
        try:
            await announcement.start()
        except Exception as err:  # noqa: BLE001 - serving matters more than discovery
            _LOGGER.error("Zeroconf announcement failed: %s", err)
            announcement = None

    synthesizer.start(loop)
    assert synthesizer.ready is not None
    exit_code = 0
    waiter = asyncio.create_task(stopping.wait())
    await asyncio.wait({synthesizer.ready, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if synthesizer.ready.done():
        if synthesizer.ready.exception() is not None:
            _LOGGER.error("Could not load %s: %s", model, synthesizer.ready.exception())
            exit_code = 1
            stopping.set()
        else:
            engine = synthesizer.ready.result().engine
            catalog.update(engine.model_type, engine.speakers, engine.languages, loaded=True)
            _LOGGER.info("Ready: %s (%s), %d voice(s), languages %s", model, engine.model_type,
                         len(engine.speakers), ", ".join(engine.languages))
    await waiter

    _LOGGER.info("Stopping")
    if announcement is not None:
        with contextlib.suppress(Exception):
            await announcement.stop()
    if server is not None:
        await server.stop()
    if stdio_task is not None:
        stdio_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await stdio_task
    await asyncio.to_thread(synthesizer.stop, 5.0)
    return exit_code


def run() -> None:
    sys.exit(asyncio.run(main()))


if __name__ == "__main__":
    run()
