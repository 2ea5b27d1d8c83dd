"""Limits against the real server (subprocess, tiny checkpoint): connections, idle timeout,
queue, clients that do not read, signals, and voice names that look like paths."""

from __future__ import annotations

import asyncio
import signal
import socket
import time

import pytest
from wyoming.event import Event
from wyoming.info import Describe
from wyoming.ping import Ping
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop

from wyoming_qwen3_tts.dev.serverproc import (
    check_audio,
    connect,
    encode_event,
    read_raw_events,
    read_until,
    synthesize,
)

LONG_TEXT = "Tell me a long story about the sea and the sky. And then one about the hills."
IDLE_TIMEOUT = 2.0
MAX_UNREAD = 3  # seconds of audio


@pytest.fixture(scope="module")
def server(start_server, tiny_custom_voice, tmp_path_factory):
    srv = start_server("--model", str(tiny_custom_voice),
                       "--data-dir", str(tmp_path_factory.mktemp("data")),
                       "--no-warmup", "--debug", "--threads", "1",
                       "--max-connections", "3", "--idle-timeout", str(IDLE_TIMEOUT),
                       "--max-queue", "2", "--max-unread-audio", str(MAX_UNREAD),
                       # every client here is 127.0.0.1: the totals are what is tested
                       "--max-connections-per-peer", "3", "--max-queue-per-peer", "2")
    srv.wait_for_log(r"Ready: ")
    return srv


async def closed_within(reader: asyncio.StreamReader, timeout: float) -> float:
    """Seconds until the server closes the connection (reading and dropping what comes)."""
    started = time.monotonic()
    while await asyncio.wait_for(reader.read(65536), timeout):
        pass
    return time.monotonic() - started


async def test_extra_connection_gets_an_error_and_is_closed(server):
    clients = [await connect(server.port) for _ in range(3)]
    try:
        for client in clients:  # all three are being served
            await client.write_event(Ping(text="x").event())
            await read_until(client, "pong", timeout=10)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b'{"type": "describe"}\n')  # sent at once: must not hide the error
        events = await read_raw_events(reader, timeout=10)
        writer.close()
        assert [e.type for e in events] == ["error"]
        assert events[0].data["code"] == "too-many-connections"
        # the three are unaffected
        await clients[0].write_event(Synthesize(text="Hi.").event())
        check_audio(await read_until(clients[0], "audio-stop"))
    finally:
        for client in clients:
            await client.disconnect()
    # once they have left, new connections are served again
    deadline = time.monotonic() + 10
    while True:
        client = await connect(server.port)
        try:
            await client.write_event(Describe().event())
            first = (await read_until(client, "info", timeout=10))[0]
        except AssertionError:  # closed: the others were not counted out yet
            first = None
        finally:
            await client.disconnect()
        if first is not None and first.type == "info":
            break
        assert time.monotonic() < deadline, "connections not released"
        await asyncio.sleep(0.1)
    assert "Refusing a connection" in server.log


async def test_busy_connections_are_not_idle(start_fresh, tiny_custom_voice, tmp_path):
    # B asks once, then sends nothing for many idle timeouts while its answer is owed: it
    # waits its turn beside A and then reads its audio slowly.  How long that takes is bounded
    # below by B's own reading pace (audio / pace, minus what the socket buffers hold), not by
    # how fast this machine synthesizes: on a faster machine B still reads at that pace, on a
    # slower one it waits longer.  --max-unread-audio is large so slow reading is allowed.
    idle = 1.0
    server = start_fresh("--model", str(tiny_custom_voice), "--data-dir", str(tmp_path),
                         "--no-warmup", "--debug", "--threads", "1", "--idle-timeout", str(idle),
                         "--max-unread-audio", "600")
    server.wait_for_log(r"Ready: ")
    a = await connect(server.port)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    sock.connect(("127.0.0.1", server.port))
    sock.setblocking(False)
    reader, writer = await asyncio.open_connection(sock=sock)
    pace = 1.5  # seconds of audio B reads per second (8 KiB per 0.09 s)
    try:
        await a.write_event(Synthesize(text=LONG_TEXT).event())
        a_events = asyncio.create_task(read_until(a, "audio-stop"))
        started = time.monotonic()
        writer.write(_encoded(Synthesize(text=LONG_TEXT)))
        await writer.drain()
        received = bytearray()
        while True:
            chunk = await asyncio.wait_for(reader.read(8192), 60)
            assert chunk, f"B was closed after {len(received)} bytes:\n{server.log[-3000:]}"
            received += chunk
            if b'"audio-stop"' in received[-4096:]:
                break
            await asyncio.sleep(8192 / (pace * 48000))
        waited = time.monotonic() - started
        check_audio(await a_events)
    finally:
        await a.disconnect()
        writer.close()
    audio_seconds = len(received) / 48000  # nearly all of it is PCM
    assert audio_seconds > 10  # LONG_TEXT on the tiny model: two sentences to the frame cap
    buffered = 1.0 + 2 * 128 * 1024 / 48000  # what the socket buffers take at once, at most
    # B sent nothing for this long and was not closed (A, idle once answered, may have been)
    assert waited >= (audio_seconds - buffered) / pace - 0.5 > 3 * idle


def _encoded(message) -> bytes:
    event = message.event()
    return encode_event(event.type, event.data)


async def test_idle_connections_are_closed(server):
    # idle: one sends nothing, one half an event; both are closed after the timeout
    silent = await asyncio.open_connection("127.0.0.1", server.port)
    partial = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        partial[1].write(b'{"type": "synthe')
        seconds = await asyncio.gather(closed_within(silent[0], 15),
                                       closed_within(partial[0], 15))
    finally:
        silent[1].close()
        partial[1].close()
    for value in seconds:
        assert IDLE_TIMEOUT - 0.5 < value < IDLE_TIMEOUT + 5
    await asyncio.to_thread(server.wait_for_log, "idle for", 10)


async def non_reader(port: int, text: str):
    """A connection that asks for `text` and never reads: its request holds its queue place
    until the server drops it, which takes at least WRITE_GRACE_SECONDS after its buffers are
    full, however fast synthesis is."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(_encoded(Synthesize(text=text)))
    await writer.drain()
    return reader, writer


async def test_full_queue_is_answered_with_an_error(server):
    # A and B (each ~32 s of audio, never read) hold both places of --max-queue 2
    mark = server.mark()
    a = await non_reader(server.port, f"{LONG_TEXT} {LONG_TEXT}")
    b = await non_reader(server.port, f"{LONG_TEXT} {LONG_TEXT}")
    server.wait_for_log(r"Segment: ", after=mark, timeout=60)  # both are in
    # C connects only now: a connection open while the machine is slow to start A would
    # pass --idle-timeout before it sends anything
    c = await connect(server.port)
    try:
        await c.write_event(Synthesize(text="Me too.").event())
        events = await read_until(c, "audio-stop", timeout=10)
        assert [e.type for e in events] == ["error", "audio-stop"]
        assert events[0].data["code"] == "queue-full" and events[0].data["text"]
        await c.write_event(SynthesizeStart().event())
        await c.write_event(SynthesizeChunk(text="Me too.").event())
        await c.write_event(SynthesizeStop().event())
        events = await read_until(c, "synthesize-stopped", timeout=10)
        assert [e.type for e in events] == ["error", "audio-stop", "synthesize-stopped"]
        assert events[0].data["code"] == "queue-full"
    finally:
        await c.disconnect()
    try:
        # once A and B are dropped their places are free again (C's were never taken)
        server.wait_for_lines(r"Dropping a client", 2, after=mark)
        await synthesize(server.port, "Now.")
    finally:
        await c.disconnect()
        a[1].close()
        b[1].close()


async def test_client_that_does_not_read_is_dropped_without_stalling_others(server):
    mark = server.mark()  # before connecting: the connection must not sit idle meanwhile
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    sock.connect(("127.0.0.1", server.port))
    sock.setblocking(False)
    reader, writer = await asyncio.open_connection(sock=sock)
    try:
        # about 32 s of audio: more than the socket buffers, MAX_UNREAD and the worker's
        # channel hold together
        text = f"{LONG_TEXT} {LONG_TEXT}".encode()
        writer.write(b'{"type": "synthesize", "data": {"text": "%s"}}\n' % text)
        await writer.drain()
        server.wait_for_log(r"Segment: ", after=mark, timeout=60)
        # another client is served while this one reads nothing
        await synthesize(server.port, "Hi.")
        server.wait_for_log(rf"Dropping a client: more than {MAX_UNREAD} s of audio left "
                            r"unread",
                            after=mark, timeout=30)
        received = 0
        with pytest.raises((ConnectionError, AssertionError)):
            while chunk := await asyncio.wait_for(reader.read(65536), 10):
                received += len(chunk)
            raise AssertionError("closed")
    finally:
        writer.close()
    assert received < 25 * 48000  # cut short
    later = "\n".join(server.lines[mark:])
    assert "Client is not reading its audio: cancelling its request" in later


async def test_voice_names_never_become_paths(server):
    client = await connect(server.port)
    try:
        for name in ("../../etc/passwd", "/etc/passwd", "..", "ryan/../../x", "C:\\x",
                     "ryan\x00", "%2e%2e%2fetc"):
            await client.write_event(Event(type="synthesize",
                                           data={"text": "Hi.", "voice": {"name": name}}))
            events = await read_until(client, "audio-stop")
            assert [e.type for e in events] == ["error", "audio-stop"], name
            assert events[0].data["code"] == "unknown-voice", name
    finally:
        await client.disconnect()


# -- signals ----------------------------------------------------------------------------------
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_signal_during_synthesis_exits_cleanly(start_fresh, tiny_custom_voice, tmp_path,
                                                     signum):
    server = start_fresh("--model", str(tiny_custom_voice), "--data-dir", str(tmp_path),
                         "--no-warmup", "--threads", "1")
    server.wait_for_log(r"Ready: ")
    client = await connect(server.port)
    try:
        await client.write_event(Synthesize(text=LONG_TEXT * 2).event())
        await read_until(client, "audio-chunk")

        async def read_to_the_end() -> list:
            events = []
            while (event := await asyncio.wait_for(client.read_event(), 10)) is not None:
                events.append(event)
            return events

        reading = asyncio.create_task(read_to_the_end())  # a client that keeps reading
        started = time.monotonic()
        server.process.send_signal(signum)
        assert await asyncio.to_thread(server.process.wait, 10) == 0, server.log
        assert time.monotonic() - started < 5, server.log
        # the client is told, then disconnected (not left waiting, nor handed the audio so
        # far as if it were the whole answer)
        events = await reading
    finally:
        await client.disconnect()
    errors = [e for e in events if e.type == "error"]
    assert [e.data["code"] for e in errors] == ["shutting-down"], [e.type for e in events]
    assert events[-1].type == "error" and "audio-stop" not in [e.type for e in events]
    assert f"{signal.Signals(signum).name} received" in server.log
    assert "Stopping" in server.log


@pytest.mark.parametrize("gap", [0.0, 0.05, 0.3])
async def test_second_signal_exits_at_once_with_status_0(start_fresh, tiny_custom_voice,
                                                         tmp_path, gap):
    server = start_fresh("--model", str(tiny_custom_voice), "--data-dir", str(tmp_path),
                         "--no-warmup", "--threads", "1")
    server.wait_for_log(r"Ready: ")
    client = await connect(server.port)
    try:
        await client.write_event(Synthesize(text=LONG_TEXT * 2).event())
        await read_until(client, "audio-chunk")
        server.process.send_signal(signal.SIGTERM)
        await asyncio.sleep(gap)  # the second one lands somewhere in the teardown
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(10) == 0, server.log
    finally:
        await client.disconnect()


async def test_signal_while_loading_exits_cleanly(start_fresh, tiny_custom_voice, tmp_path):
    server = start_fresh("--model", str(tiny_custom_voice), "--data-dir", str(tmp_path),
                         "--threads", "1")
    server.wait_for_log(r"Listening on ")
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(10) == 0, server.log
