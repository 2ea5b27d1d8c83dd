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
import threading
from functools import partial
from pathlib import Path

from wyoming.server import AsyncServer, AsyncTcpServer

from . import __version__
from .catalog import Catalog, peek_checkpoint, scan_voices_dir
from .cloning import DEFAULT_MAX_REFERENCE_SECONDS, MIN_REFERENCE_SECONDS
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
    parser.option("--max-connections", type=int, default=16,
                  help="client connections served at once; one more gets an error and is "
                       "closed")
    parser.option("--idle-timeout", type=float, default=300.0,
                  help="seconds after which a connection that sends nothing (and is not "
                       "being answered) is closed; 0 = never")
    parser.option("--max-queue", type=int, default=8,
                  help="requests in the server at once, all clients together (being spoken "
                       "or waiting); one more is answered with a queue-full error")
    parser.option("--max-unread-audio", type=float, default=30.0,
                  help="seconds of audio a client may leave unread; past that its request is "
                       "cancelled and it is disconnected")
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
    if args.max_text_chars < 1:
        parser.error("--max-text-chars must be at least 1")
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


def load_engine(args: argparse.Namespace, catalog: Catalog) -> Loaded:
    """Runs in the synthesis thread: load the first model, check the options against the
    catalog, warm up.  The other models are loaded when one of their voices is asked for."""
    from .cloning import ClonePromptCache
    from .engine import Engine
    from .loader import resolve_checkpoint
    from .pool import ModelPool, VoiceRouter, engine_loaded, prefetch

    def load(model: str, folder: Path) -> Engine:
        engine = Engine.load(str(folder), data_dir=args.data_dir,
                             local_files_only=args.local_files_only, dtype=args.dtype,
                             threads=args.threads, interop_threads=args.interop_threads)
        engine.model_name = model
        return engine

    router: VoiceRouter | None = None

    def on_load(model: str, engine) -> None:
        engine_loaded(catalog, model, engine)
        if router is not None:
            router.prepare(model, engine)

    pool = ModelPool(lambda model: resolve_checkpoint(model, args.data_dir,
                                                      args.local_files_only),
                     load, args.max_loaded_models, on_load=on_load)
    router = VoiceRouter(catalog, pool, ClonePromptCache(args.data_dir / "voice_cache",
                                                         args.max_reference_seconds))
    model = catalog.first_model
    engine = pool.get(model)
    others = [each for each in catalog.checkpoints if each != model]
    if others:  # downloads of the other checkpoints go on while the first one serves
        threading.Thread(target=prefetch, name="prefetch", daemon=True, args=(
            catalog, others, lambda each: resolve_checkpoint(each, args.data_dir,
                                                             args.local_files_only))).start()
    default = catalog.default_voice(args.voice)
    if args.voice and default is None:
        raise ValueError(f"--voice {args.voice!r} is not a voice of this server: "
                         f"{', '.join(catalog.speakers) or 'none'}")
    router.default_voice = default.name if default is not None else None
    if args.language != AUTO and args.language not in engine.languages:
        raise ValueError(f"--language {args.language} is not spoken by {model}")
    detector = LanguageDetector(engine.languages) if args.language == AUTO else None
    if not args.no_warmup:
        router.warmup(model, engine)
    return Loaded(engine=router, default_speaker=router.default_voice, detector=detector)


async def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO,
                        format=args.log_format, stream=sys.stderr, force=True)
    _LOGGER.debug(args)
    model = args.model[0]

    catalog = Catalog(list(dict.fromkeys(args.model)), streaming=not args.no_streaming,
                      folders=scan_voices_dir(args.voices_dir))
    for each in catalog.checkpoints:
        peeked = peek_checkpoint(each, args.data_dir)
        if peeked is not None:
            catalog.set_checkpoint(each, peeked)
            _LOGGER.debug("%s before loading (from %s): %s, speakers %s", each, peeked.source,
                          peeked.model_type, peeked.speakers)
    _LOGGER.info("Voices: %s", ", ".join(f"{v.name} ({v.kind}, {v.model})"
                                        for v in catalog.voices) or "none yet")
    synthesizer = Synthesizer(partial(load_engine, args, catalog))
    settings = Settings(samples_per_chunk=args.samples_per_chunk,
                        streaming=not args.no_streaming, max_text_chars=args.max_text_chars,
                        language=None if args.language == AUTO else args.language,
                        max_connections=args.max_connections,
                        # over stdio:// the one connection is the server's whole life
                        idle_timeout=0 if args.uri.startswith("stdio://") else args.idle_timeout,
                        max_queue=args.max_queue, max_unread_seconds=args.max_unread_audio)
    service = Service(settings=settings, catalog=catalog, synthesizer=synthesizer)

    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()

    def on_signal(signum: int) -> None:
        if stopping.is_set():
            _LOGGER.warning("%s again: exiting at once", signal.Signals(signum).name)
            os._exit(1)
        _LOGGER.info("%s received", signal.Signals(signum).name)
        stopping.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, on_signal, signum)

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
            loaded = synthesizer.ready.result()
            summary = catalog.checkpoints[model].summary
            _LOGGER.info("Ready: %s (%s), %d voice(s) in all, default %s, languages %s", model,
                         summary.model_type if summary else "?", len(catalog.voices),
                         loaded.default_speaker, ", ".join(catalog.languages))
    await waiter

    # Stop accepting (late connections are refused), withdraw the announcement, close every
    # connection (which cancels its requests: the worker stops within a frame), then let the
    # worker finish; all of it bounded, a few seconds at most.
    _LOGGER.info("Stopping")
    service.stopping = True
    if announcement is not None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(announcement.stop(), 3.0)
    if server is not None:
        await server.stop()
    if stdio_task is not None:
        stdio_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await stdio_task
    # a worker still loading the model has nothing to finish: do not wait for it
    await asyncio.to_thread(synthesizer.stop, 5.0 if synthesizer.ready.done() else 0.1)
    return exit_code


def run() -> None:
    code = asyncio.run(main())
    if any(thread.name == "synthesis" and thread.is_alive() for thread in threading.enumerate()):
        # Stopped while the model was still loading: do not wait for it, nor let interpreter
        # shutdown run into a thread deep inside torch.
        _LOGGER.info("Exiting without waiting for the model to finish loading")
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    run()
