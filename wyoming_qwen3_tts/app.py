"""The composition root: options in, a running server out.

`python -m wyoming_qwen3_tts` parses the options (cli.py), builds the catalog of voices, the
synthesis worker (whose thread loads the first model through the engine side, the only place
that imports it) and the Wyoming server, announces it over zeroconf if asked, and stops on
SIGTERM/SIGINT.  The server listens first and loads the model afterwards, so `describe` is
answered from the first second; requests that arrive while the model loads wait for it.
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

from .cli import parse_args
from .contract import AUTO, Engine, EngineFactory
from .http.voices import VoiceStore
from .logs import configure as configure_logging
from .server.audio_effects import Gain
from .server.catalog import Catalog, normalize, peek_checkpoint
from .server.connection import Qwen3TtsEventHandler
from .server.languages import LanguageDetector
from .server.normalize import prepare as prepare_normalization
from .server.pool import ModelPool
from .server.router import VoiceRouter, prefetch
from .server.speech import Service, Settings
from .server.voice_folders import scan_voices_dir
from .server.worker import Loaded, Synthesizer

_LOGGER = logging.getLogger("wyoming_qwen3_tts")


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


def engine_factory(args: argparse.Namespace) -> EngineFactory:
    """How the server loads a checkpoint (the one place that imports the engine side)."""

    def load(model: str, folder: Path) -> Engine:
        from .engine.engine import Engine as TorchEngine

        engine = TorchEngine.load(str(folder), data_dir=args.data_dir,
                                  local_files_only=args.local_files_only, dtype=args.dtype,
                                  threads=args.threads, interop_threads=args.interop_threads,
                                  max_reference_seconds=args.max_reference_seconds)
        engine.model_name = model
        return engine

    return load


def resolver(args: argparse.Namespace):
    """model (repo id or folder) -> its local checkpoint folder, downloading if allowed."""

    def resolve(model: str) -> Path:
        from .engine.loader import resolve_checkpoint

        return resolve_checkpoint(model, args.data_dir, args.local_files_only)

    return resolve


def load_first_model(args: argparse.Namespace, catalog: Catalog) -> Loaded:
    """Runs in the synthesis thread: load the first model, check the options against the
    catalog, warm up.  The other models are loaded when one of their voices is asked for."""
    router: VoiceRouter | None = None

    def on_load(model: str, engine: Engine) -> None:
        assert router is not None
        router.loaded(model, engine)

    resolve = resolver(args)
    pool = ModelPool(resolve, engine_factory(args), args.max_loaded_models, on_load=on_load)
    router = VoiceRouter(catalog, pool)
    model = catalog.first_model
    engine = pool.get(model)
    others = [each for each in catalog.checkpoints if each != model]
    if others:  # downloads of the other checkpoints go on while the first one serves
        threading.Thread(target=prefetch, name="prefetch", daemon=True,
                         args=(catalog, others, resolve)).start()
    if args.language != AUTO and args.language not in engine.languages:
        raise ValueError(f"--language {args.language} is not spoken by {model}")
    if not args.no_warmup:
        router.warmup(model)  # before the default is chosen: a voice that fails is left out
    default = catalog.default_voice(args.voice)
    if args.voice and default is None:
        why = catalog.left_out(args.voice)
        if why is None:  # a name no voice has: the configuration is wrong
            raise ValueError(f"--voice {args.voice!r} is not a voice of this server: "
                             f"{', '.join(catalog.voice_names) or 'none'}")
        default = catalog.default_voice(None)  # it exists but does not work: another one
        _LOGGER.error("--voice %s was left out (%s); the default voice is %s instead",
                      args.voice, why, default.name if default is not None else "none")
    router.default_voice = default.name if default is not None else None
    detector = LanguageDetector(engine.languages) if args.language == AUTO else None
    if not args.no_normalize:
        prepare_normalization(engine.languages)  # imports and patterns, once, while loading
    return Loaded(router=router, detector=detector, normalize=not args.no_normalize,
                  sentence_silence=args.sentence_silence,
                  gain=Gain(args.volume) if args.volume != 1.0 else None)


async def start_http(args: argparse.Namespace, service: Service, voices: VoiceStore):
    """The HTTP front door (--http), in this event loop; FastAPI is imported only here."""
    from .http.server import HttpServer
    from .http.settings import HttpSettings

    if args.voice:
        voices.protected.add(normalize(args.voice))
    settings = HttpSettings(api_key=args.http_api_key or None,
                            trusted_proxies=args.http_trusted_proxy,
                            max_connections=args.max_connections,
                            write_grace_seconds=max(5.0, args.max_unread_audio),
                            configured_voice=args.voice)
    server = HttpServer(args.http, settings, service, voices, debug=args.debug)
    await server.start()
    return server


def server_settings(args: argparse.Namespace) -> Settings:
    return Settings(samples_per_chunk=args.samples_per_chunk,
                    streaming=not args.no_streaming, max_text_chars=args.max_text_chars,
                    language=None if args.language == AUTO else args.language,
                    max_connections=args.max_connections,
                    # over stdio:// the one connection is the server's whole life
                    idle_timeout=0 if args.uri.startswith("stdio://") else args.idle_timeout,
                    max_queue=args.max_queue, max_unread_seconds=args.max_unread_audio,
                    max_stream_chars=args.max_stream_chars,
                    max_connections_per_peer=args.max_connections_per_peer,
                    max_queue_per_peer=args.max_queue_per_peer)


async def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging(args.debug, args.log_format)
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
    synthesizer = Synthesizer(partial(load_first_model, args, catalog))
    service = Service(settings=server_settings(args), catalog=catalog, synthesizer=synthesizer)
    # voice folders changed by hand or over HTTP are picked up while serving (http/voices.py)
    voices = VoiceStore(catalog, args.voices_dir)
    watcher = asyncio.create_task(voices.watch(), name="voices folder watch")

    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()

    def on_signal(signum: int) -> None:
        if stopping.is_set():
            exit_at_once(signum)
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
    http_server = await start_http(args, service, voices) if args.http else None

    announcement = None
    if args.zeroconf:
        from .server.discovery import Announcement

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
                         loaded.default_voice, ", ".join(catalog.languages))
    await waiter

    # Stop accepting (late connections are refused), withdraw the announcement, end every
    # connection (requests in flight get an `error`, shutting-down; their cancelling stops the
    # worker within a frame), then let the worker finish; all of it bounded, a few seconds at
    # most.
    _LOGGER.info("Stopping")
    service.stopping = True
    for signum in (signal.SIGINT, signal.SIGTERM):  # from here to the process's very end
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.remove_signal_handler(signum)
            signal.signal(signum, exit_at_once)
    if announcement is not None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(announcement.stop(), 3.0)
    if service.connections:
        await asyncio.wait({asyncio.create_task(connection.shut_down())
                            for connection in list(service.connections)}, timeout=3.0)
    if server is not None:
        await server.stop()
    if http_server is not None:
        await http_server.stop()
    watcher.cancel()
    if stdio_task is not None:
        stdio_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await stdio_task
    # a worker still loading the model has nothing to finish: do not wait for it
    await asyncio.to_thread(synthesizer.stop, 5.0 if synthesizer.ready.done() else 0.1)
    return exit_code


def exit_at_once(signum: int, _frame=None) -> None:
    """A second SIGTERM/SIGINT while stopping: exit now, with the same status 0 as a
    stop that finished (nothing is lost: caches are written atomically)."""
    with contextlib.suppress(Exception):
        _LOGGER.warning("%s again: exiting at once", signal.Signals(signum).name)
        logging.shutdown()
    os._exit(0)


def run() -> None:
    code = asyncio.run(main())
    if any(thread.name == "synthesis" and thread.is_alive() for thread in threading.enumerate()):
        # stopped while the model was still loading: do not wait for it
        _LOGGER.info("Exiting without waiting for the model to finish loading")
    # No interpreter shutdown: it would wait for threads deep inside torch, and while it runs
    # a signal would kill the process (status 143) instead of reaching exit_at_once.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
