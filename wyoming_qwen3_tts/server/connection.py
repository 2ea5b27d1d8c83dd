"""One client connection: Wyoming events in, audio events out.

Reading and writing are split so the connection never stops listening: `handle_event` only
turns events into requests (speech.py: validated, segmented, queued for the synthesis worker;
it never waits for audio), while a sender task (sender.py) writes each request's audio in
order, as the worker produces it.
So `describe` and `ping` are answered at once, also mid-synthesis; a client that hangs up is
noticed at once and its queued and running sentences are cancelled; and several requests and
streams on one connection are answered in order, each with exactly one audio-start (before its
first chunk) and one audio-stop, plus synthesize-stopped for a stream.  Every failure ends the
request with `error` then `audio-stop` (and `synthesize-stopped`), never with silence.

Nothing a client does can hold more than bounded resources (see README, "Limits"):

- events are read by the bounded reader of protocol.py; a malformed or oversized one gets an
  `error` (code `bad-event`) and closes that connection only;
- at most `max_connections` connections are served; one more gets an `error`
  (`too-many-connections`) and is closed;
- a connection that completes no event for `idle_timeout` seconds while nothing is being
  answered on it is closed;
- at most `max_queue` requests are in the server at once (being spoken or waiting, all
  connections together); one more is answered `error` (`queue-full`), `audio-stop` (and
  `synthesize-stopped`), and one connection may have at most MAX_PENDING_PER_CONNECTION
  answers outstanding;
- writes never wait for a client: the transport buffers up to `max_unread_seconds` of audio;
  past that a write waits at most WRITE_GRACE_SECONDS for the client to read, then the
  connection's requests are cancelled and it is closed.  The synthesis worker never waits for
  a client either (worker.Channel).

Voice names from clients are only looked up in the catalog; nothing a client sends becomes a
path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time

from wyoming.error import Error
from wyoming.event import Event, async_write_event
from wyoming.info import Describe
from wyoming.ping import Ping, Pong
from wyoming.server import AsyncEventHandler
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop

from ..contract import BYTES_PER_SECOND, SAMPLE_WIDTH
from .protocol import EventReader, ProtocolError
from .sender import Sender
from .speech import Service, SlowClient, Speech
from .untrusted import clip
from .worker import Lane

_LOGGER = logging.getLogger(__name__)

WRITE_GRACE_SECONDS = 5.0  # a write past the unread-audio bound waits this long for the client
MAX_PENDING_PER_CONNECTION = 32  # answers (requests, stream stops) outstanding on a connection
SEND_BUFFER_BYTES = 128 * 1024  # kernel send buffer per TCP connection (Linux doubles it)
LINGER_SECONDS = 1.0  # after a closing error: how long incoming bytes are read and dropped
LINGER_BYTES = 1024 * 1024


def voice_fields(data: dict) -> tuple[str | None, str | None]:
    """(voice name, language) a synthesize or synthesize-start asks for.  Read from the raw
    data: wyoming's SynthesizeVoice.from_dict drops `language` when `name` is set; Home
    Assistant sends `speaker` (the same name) beside `name`."""
    raw = data.get("voice")
    voice: dict = raw if isinstance(raw, dict) else {}
    name, speaker, language = (
        value if isinstance(value, str) and value.strip() else None
        for value in (voice.get("name"), voice.get("speaker"), voice.get("language"))
    )
    return name or speaker, language


def peer_of(writer: asyncio.StreamWriter) -> str:
    """The client's address ("local" over unix:// and stdio://)."""
    peer = writer.get_extra_info("peername")
    if isinstance(peer, tuple) and peer and isinstance(peer[0], str):
        return peer[0]
    return "local"


class Qwen3TtsEventHandler(AsyncEventHandler):
    def __init__(self, service: Service, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.service = service
        self._events = EventReader(self.reader)
        self._unread_limit = max(SAMPLE_WIDTH, int(service.settings.max_unread_seconds
                                                   * BYTES_PER_SECOND))
        self._last_activity = time.monotonic()  # last complete event in or event out
        self._eof_written = False
        self._answering = True  # False once a closing error is due: no answer event after it
        self._lane = Lane()
        self._sender = Sender(self._write_answer, service.settings.samples_per_chunk)
        self._sender_task: asyncio.Task | None = None
        self._stream: Speech | None = None
        self._ignored_stream = False
        self._peer = peer_of(self.writer)

    # -- reading ---------------------------------------------------------------------------
    async def run(self) -> None:
        """Receive events until the client leaves (bounded reads: protocol.EventReader)."""
        service, settings = self.service, self.service.settings
        refusal = "the server is shutting down" if service.stopping else \
            service.admission.connection_refusal(self._peer)
        if refusal is not None:
            await self._refuse(refusal)
            return
        service.admission.take_connection(self._peer)
        service.connections.add(self)
        self._is_running = True
        self._configure_transport()
        watchdog = (asyncio.create_task(self._watch_idle(), name="wyoming idle watchdog")
                    if settings.idle_timeout > 0 else None)
        try:
            while self._is_running:
                try:
                    event = await self._events.read_event()
                except ProtocolError as err:
                    _LOGGER.warning("Closing a connection: %s", err)
                    self._stop_answering()
                    await self.write_event(Error(text=str(err), code="bad-event").event())
                    await self._close_gently()
                    break
                if event is None:
                    break
                self._last_activity = time.monotonic()
                if not await self.handle_event(event):
                    break
        except SlowClient as err:
            self._drop(err)
        except (ConnectionError, OSError) as err:
            _LOGGER.debug("Connection lost: %s", err)
        finally:
            service.admission.release_connection(self._peer)
            service.connections.discard(self)
            if watchdog is not None:
                watchdog.cancel()
            await self.disconnect()
            self.writer.close()

    def _configure_transport(self) -> None:
        """Writes do not wait until `max_unread_seconds` of audio are buffered; the kernel's
        own send buffer is kept moderate so that bound means something."""
        transport = self.writer.transport
        with contextlib.suppress(AttributeError, NotImplementedError):
            transport.set_write_buffer_limits(high=self._unread_limit)
        sock = self.writer.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)

    async def _refuse(self, why: str) -> None:
        """Too many connections (or shutting down): say so and close."""
        stopping = self.service.stopping
        if not stopping:
            _LOGGER.warning("Refusing a connection from %s: %s (--max-connections, "
                            "--max-connections-per-peer)", clip(self._peer), why)
        error = Error(text=why, code="shutting-down" if stopping else "too-many-connections")
        try:
            await self.write_event(error.event())
            await self._close_gently()
        except (ConnectionError, OSError):
            pass
        finally:
            self.writer.close()

    async def _close_gently(self) -> None:
        """Half-close, then read and drop what the client still sends for a moment: closing a
        socket with unread input resets it, and the client could miss our last event."""
        self._eof_written = True
        with contextlib.suppress(Exception):
            if self.writer.can_write_eof():
                self.writer.write_eof()
            loop = asyncio.get_running_loop()
            deadline = loop.time() + LINGER_SECONDS
            dropped = 0
            while dropped < LINGER_BYTES and (left := deadline - loop.time()) > 0:
                chunk = await asyncio.wait_for(self.reader.read(64 * 1024), left)
                if not chunk:
                    break
                dropped += len(chunk)

    async def _watch_idle(self) -> None:
        """Close the connection after `idle_timeout` seconds without a complete event, unless
        requests of it are still being answered."""
        timeout = self.service.settings.idle_timeout
        while self._is_running:
            now = time.monotonic()
            if any(speech.closed for speech in self._sender.open):
                self._last_activity = now  # audio is owed (an open stream waits for the client)
            idle = now - max(self._last_activity, self._sender.last_sent)
            if idle >= timeout:
                _LOGGER.info("Closing a connection idle for %.0f s (--idle-timeout)", idle)
                await self.stop()
                return
            await asyncio.sleep(max(0.05, min(timeout - idle, 1.0)))

    def _cancel_all(self) -> None:
        for speech in self._sender.open:
            speech.cancel()

    def _stop_answering(self) -> None:
        """Before a closing error: nothing more is generated or sent on this connection.  The
        gate matters beside the cancel: a write that completes as the sender task is cancelled
        can swallow the cancellation (asyncio.wait_for before Python 3.12), and its next chunk
        would follow the error."""
        self._answering = False
        self._cancel_all()
        if self._sender_task is not None:
            self._sender_task.cancel()

    async def _write_answer(self, event: Event) -> None:
        """The sender's writes: audio and the events that end an answer, until the connection
        stops answering."""
        if not self._answering:
            raise ConnectionResetError("the connection no longer answers")
        await self.write_event(event)

    def _drop(self, err: BaseException) -> None:
        """The client does not read: cancel its requests and close at once, dropping the
        buffered audio."""
        _LOGGER.warning("Dropping a client: %s", err)
        self._cancel_all()
        self._is_running = False
        self.writer.transport.abort()

    async def write_event(self, event: Event) -> None:
        """Write without waiting for the client, up to `max_unread_seconds` of audio buffered;
        past that, wait at most WRITE_GRACE_SECONDS for it to read (else SlowClient)."""
        if self.writer.is_closing() or self._eof_written:
            raise ConnectionResetError("connection closed")
        self._last_activity = time.monotonic()
        try:
            await asyncio.wait_for(async_write_event(event, self.writer), WRITE_GRACE_SECONDS)
        except asyncio.TimeoutError:
            raise SlowClient(f"more than {self._unread_limit / BYTES_PER_SECOND:g} s of "
                             f"audio left unread for {WRITE_GRACE_SECONDS:g} s") from None

    async def shut_down(self) -> None:
        """The server is stopping: a request still being answered ends with an `error`
        (`shutting-down`), so the client reports it instead of taking the audio so far for a
        whole answer; then the connection closes."""
        owed = any(not speech.finished for speech in self._sender.open)
        self._stop_answering()
        self._is_running = False
        if owed:
            with contextlib.suppress(Exception):
                # behind the audio still buffered for it: waits (a little) until it has left
                await asyncio.wait_for(self.write_event(Error(
                    text="the server is shutting down", code="shutting-down").event()), 2.5)
        with contextlib.suppress(Exception):
            self.writer.close()

    async def disconnect(self) -> None:
        unfinished = self._sender.abandon()
        if unfinished:
            _LOGGER.info("Client disconnected: cancelled %d unfinished request(s)",
                         len(unfinished))
        if self._sender_task is not None:
            self._sender_task.cancel()

    async def handle_event(self, event: Event) -> bool:
        kind = event.type
        if Describe.is_type(kind):
            await self.write_event(self.service.catalog.info().event())
        elif Ping.is_type(kind):
            await self.write_event(Pong(text=event.data.get("text")).event())
        elif ((Synthesize.is_type(kind) and self._stream is None)
              or SynthesizeStart.is_type(kind) or SynthesizeStop.is_type(kind)) \
                and self._sender.pending >= MAX_PENDING_PER_CONNECTION:
            _LOGGER.warning("Closing a connection with %d answers outstanding",
                            self._sender.pending)
            self._stop_answering()
            await self.write_event(Error(text=f"more than {MAX_PENDING_PER_CONNECTION} requests "
                                              "outstanding on one connection",
                                         code="too-many-requests").event())
            await self._close_gently()
            return False
        elif Synthesize.is_type(kind):
            if self._stream is not None:
                _LOGGER.debug("Ignoring the compatibility synthesize inside a stream")
            else:
                text = event.data.get("text")
                self._new_speech(event.data, streaming=False).say(
                    text if isinstance(text, str) else "")
        elif SynthesizeStart.is_type(kind):
            self._start_stream(event.data)
        elif SynthesizeChunk.is_type(kind):
            self._stream_text(event.data.get("text"))
        elif SynthesizeStop.is_type(kind):
            self._stop_stream()
        else:
            _LOGGER.debug("Ignoring event %s", clip(kind))
        return True

    # -- requests --------------------------------------------------------------------------
    def _new_speech(self, data: dict, streaming: bool) -> Speech:
        voice, language = voice_fields(data)
        speech = Speech(self.service, self._lane, streaming=streaming, voice=voice,
                        language=language, capacity=self._unread_limit, peer=self._peer)
        self._sender.answer(speech)
        self._start_sender()
        return speech

    def _start_sender(self) -> None:
        if self._sender_task is None:
            self._sender_task = asyncio.create_task(self._send_all(),
                                                    name="wyoming audio sender")

    def _start_stream(self, data: dict) -> None:
        if self._stream is not None:
            _LOGGER.warning("synthesize-start inside a stream: ending the previous stream")
            self._stop_stream()
        if not self.service.settings.streaming:
            # Like wyoming-piper: streaming is off, so the compatibility `synthesize` inside
            # it is served; synthesize-stop is still answered so no client waits.
            self._ignored_stream = True
            return
        self._stream = self._new_speech(data, streaming=True)

    def _stream_text(self, text) -> None:
        if self._stream is None:
            if not self._ignored_stream:
                _LOGGER.debug("Ignoring synthesize-chunk outside a stream")
            return
        if isinstance(text, str):
            self._stream.add_text(text)

    def _stop_stream(self) -> None:
        if self._ignored_stream:
            self._ignored_stream = False
            self._sender.stream_stopped()
            self._start_sender()
            return
        speech, self._stream = self._stream, None
        if speech is None:
            _LOGGER.debug("Ignoring synthesize-stop outside a stream")
            return
        speech.end_text()

    # -- writing ---------------------------------------------------------------------------
    async def _send_all(self) -> None:
        try:
            await self._sender.run()
        except SlowClient as err:
            self._drop(err)
        except (ConnectionError, OSError) as err:
            if self._answering:  # else whoever stopped the answers closes, after its error
                _LOGGER.debug("Could not send audio, client gone: %s", err)
                await self.stop()
        except asyncio.CancelledError:
            pass
