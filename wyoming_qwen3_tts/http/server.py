"""uvicorn inside the running event loop: the HTTP server beside the Wyoming one.

`HttpServer.start()` binds the socket itself (so a port in use is an OSError here, not
uvicorn's `sys.exit`), then serves the FastAPI app (api.py) in a task of the same loop as the
Wyoming server and the worker's channels; uvicorn's own signal handling is switched off (the
application's SIGTERM/SIGINT handler in app.py stops everything).  `stop()` cancels the speech
being answered and lets uvicorn close its connections, within a few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Iterator

from . import parse_http_uri
from .api import create_app
from .settings import HttpSettings

_LOGGER = logging.getLogger(__name__)

STOP_SECONDS = 3


class _QuietAbort(logging.Filter):
    """A stream this server ends early on purpose (a client that stopped reading, a failure
    after the audio began) is closed by uvicorn with an error line of its own: drop it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "returned without completing response" not in record.getMessage()


def _uvicorn_server_class():
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:  # app.py handles the signals
            yield

        def install_signal_handlers(self) -> None:  # older uvicorn releases
            pass

    return Server


class HttpServer:
    def __init__(self, uri: str, settings: HttpSettings, service, store, debug: bool = False):
        self.uri = uri
        self.settings = settings
        self.app = create_app(service, store, settings)
        self.service = service
        self._debug = debug
        self._server = None
        self._task: asyncio.Task | None = None
        self.address = ""

    def _bind(self) -> socket.socket:
        kind, where, port = parse_http_uri(self.uri)
        if kind == "unix":
            with contextlib.suppress(FileNotFoundError):
                os.unlink(where)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.bind(where)
            self.address = f"unix://{where}"
        else:
            family = socket.AF_INET6 if ":" in where else socket.AF_INET
            sock = socket.create_server((where, port), family=family, reuse_port=False)
            host, bound = sock.getsockname()[:2]
            self.address = f"http://{where}:{bound}"
        sock.listen(128)
        sock.setblocking(False)
        return sock

    async def start(self) -> None:
        import uvicorn

        sock = self._bind()
        for name in ("uvicorn.error", "uvicorn"):
            logging.getLogger(name).addFilter(_QuietAbort())
        if not self._debug:
            logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
        config = uvicorn.Config(
            self.app, log_config=None, access_log=self._debug, lifespan="off", ws="none",
            proxy_headers=False, server_header=False, timeout_keep_alive=5,
            limit_concurrency=self.settings.max_connections,
            timeout_graceful_shutdown=STOP_SECONDS, h11_max_incomplete_event_size=64 * 1024)
        server = self._server = _uvicorn_server_class()(config)
        self._task = asyncio.create_task(server.serve(sockets=[sock]), name="http server")
        while not server.started:
            if self._task.done():
                self._task.result()  # raises what stopped it
                raise OSError(f"the HTTP server on {self.uri} stopped at once")
            await asyncio.sleep(0.01)
        _LOGGER.info("HTTP on %s (%s)", self.address, self.settings.describe_access())
        # librosa's time stretch is not warmed up here: its first call compiles numba code
        # (2.5 s, 24 s the first time ever) and keeps LLVM in the process (about 0.2 GB of
        # RSS for as long as the server runs), which only the first request with a speed
        # should pay (audio.stretch)

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self.app.state.answering.cancel_all()
        self._server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), STOP_SECONDS + 2)
        except (asyncio.TimeoutError, Exception):  # noqa: BLE001 - stopping regardless
            self._server.force_exit = True
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
