"""Round two of what a hostile or unlucky client can do, against the real server (subprocess,
tiny checkpoint) and, where a held worker makes it deterministic, in process: streams that
say nothing, one address holding every place, a long request ahead of a short one, huge or
broken strings, and a flood of accept errors."""

from __future__ import annotations

import asyncio
import re
import resource
import socket

import pytest
from gated_engine import GatedEngine, start, stop
from wyoming.event import Event
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


def encoded(kind: str, data: dict) -> bytes:
    return encode_event(kind, data)


async def events_from(address: str, port: int, payload: bytes, last: str = "audio-stop",
                      timeout: float = 60) -> list[Event]:
    """Send raw bytes from the loopback address `address`; every event up to `last`."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(address, 0))
    try:
        writer.write(payload)
        await writer.drain()
        return await read_raw_events(reader, last, timeout)
    finally:
        writer.close()


@pytest.fixture(scope="module")
def server(start_server, tiny_custom_voice, tmp_path_factory):
    srv = start_server("--model", str(tiny_custom_voice),
                       "--data-dir", str(tmp_path_factory.mktemp("data")),
                       "--no-warmup", "--debug", "--threads", "1",
                       "--max-connections", "12", "--max-connections-per-peer", "10",
                       "--max-queue", "2", "--max-queue-per-peer", "2", "--idle-timeout", "60")
    srv.wait_for_log(r"Ready: ")
    return srv


# -- 5: an open stream holds no queue place before it has a sentence ---------------------------
async def test_streams_waiting_for_text_hold_no_queue_place(server):
    streams = [await connect(server.port) for _ in range(8)]
    try:
        for stream in streams:  # each opens a stream and sends a letter, no sentence
            await stream.write_event(SynthesizeStart().event())
            await stream.write_event(SynthesizeChunk(text="a").event())
            await stream.write_event(Ping(text="p").event())
            await read_until(stream, "pong")
        # --max-queue 2, eight open streams: a request is still served
        await synthesize(server.port, "Hello there.")
        # and a stream that then finishes its sentence is spoken
        await streams[0].write_event(SynthesizeChunk(text="nd that is all.").event())
        await streams[0].write_event(SynthesizeStop().event())
        check_audio(await read_until(streams[0], "synthesize-stopped"), streaming=True)
    finally:
        for stream in streams:
            await stream.disconnect()


# -- 6: one address cannot take every connection ---------------------------------------------
async def test_one_address_cannot_hold_every_connection(server):
    held = []
    try:
        for _ in range(10):  # --max-connections-per-peer 10 of 12
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port,
                                                           local_addr=("127.0.0.1", 0))
            writer.write(encoded("ping", {"text": "x"}))
            await writer.drain()
            assert b"pong" in await asyncio.wait_for(reader.readline(), 10)
            held.append(writer)
        refused = await events_from("127.0.0.1", server.port, encoded("describe", {}),
                                    last="error")
        assert refused[-1].data["code"] == "too-many-connections"
        assert "your address" in refused[-1].data["text"]
        # another address (Home Assistant, say) is still served
        info = await events_from("127.0.0.2", server.port, encoded("describe", {}), last="info")
        assert info[-1].type == "info"
        answer = await events_from("127.0.0.2", server.port,
                                   encoded("synthesize", {"text": "Hi."}))
        assert answer[0].type == "audio-start" and answer[-1].type == "audio-stop"
    finally:
        for writer in held:
            writer.close()


# -- 7: a short request behind a long one waits one sentence, not the whole text -------------
async def test_short_request_is_not_stuck_behind_a_long_one(server):
    sentence = "今天天气很好，我们去公园散步吧。"
    long_text = sentence * 30
    mark = server.mark()
    long_client = await connect(server.port)
    try:
        await long_client.write_event(Synthesize(text=long_text).event())
        await read_until(long_client, "audio-start")
        reader = asyncio.create_task(read_until(long_client, "audio-stop"))
        await synthesize(server.port, "Hello there.")
        reader.cancel()
    finally:
        await long_client.disconnect()
    segments = [int(m[1]) for line in server.lines[mark:]
                if (m := re.search(r"Segment: (\d+) chars", line))]
    # the long request's first sentence, then the short one (not after all 30)
    assert segments[:2] == [len(sentence), 12], segments
    first_audio = server.wait_for_log(r"Synthesize: 12 chars, .* first audio ([\d.]+) s",
                                      after=mark)
    print(f"first audio of the short request behind the long one: {first_audio[1]} s")


# -- 10 and 11: strings from clients -----------------------------------------------------------
async def test_huge_client_strings_are_not_echoed_in_full(server):
    mark = server.mark()
    before = sum(len(line) for line in server.lines)
    name = "v" * 1_000_000
    events = await events_from("127.0.0.1", server.port,
                               encoded("synthesize", {"text": "Hi.", "voice": {"name": name}}))
    assert [e.type for e in events] == ["error", "audio-stop"]
    assert events[0].data["code"] == "unknown-voice" and len(events[0].data["text"]) < 1000
    server.mark()
    assert sum(len(line) for line in server.lines) - before < 20_000
    assert "1000000 characters" in "\n".join(server.lines[mark:])


async def test_lone_surrogates_and_control_characters_are_cleaned(server):
    # valid JSON, no valid text: lone surrogates, a NUL, a bidi override
    raw = b'{"type": "synthesize", "data": {"text": "Hi \\ud800 there\\u0000.\\u202e"}}\n'
    events = await events_from("127.0.0.1", server.port, raw)
    assert events[0].type == "audio-start" and events[-1].type == "audio-stop", events
    # in a stream, the valid sentences around a broken one are spoken
    mark = server.mark()
    stream = (encoded("synthesize-start", {})
              + b'{"type": "synthesize-chunk", "data": {"text": "Good day. \\udfff\\ud800. "}}\n'
              + encoded("synthesize-chunk", {"text": "All is fine."})
              + encoded("synthesize-stop", {}))
    events = await events_from("127.0.0.1", server.port, stream, last="synthesize-stopped")
    kinds = [e.type for e in events]
    assert "error" not in kinds and kinds[0] == "audio-start", kinds
    server.wait_for_log(r"Stream: \d+ chars, 2 segment\(s\)", after=mark)
    logged = "\n".join(server.lines[mark:])
    assert "Traceback" not in logged and "synthesis-failed" not in logged


# -- 13: a flood of accept errors is not a flood of log lines --------------------------------
async def test_accept_errors_do_not_flood_the_log(start_fresh, tiny_custom_voice, tmp_path):
    server = start_fresh("--model", str(tiny_custom_voice), "--data-dir", str(tmp_path),
                         "--no-warmup", "--threads", "1", "--max-connections", "1000",
                         "--max-connections-per-peer", "1000")
    server.wait_for_log(r"Ready: ")
    import os

    open_fds = len(os.listdir(f"/proc/{server.process.pid}/fd"))
    soft, hard = resource.prlimit(server.process.pid, resource.RLIMIT_NOFILE)
    resource.prlimit(server.process.pid, resource.RLIMIT_NOFILE, (open_fds + 20, hard))
    held = []
    try:
        for _ in range(200):  # far more than the server can accept now
            sock = socket.socket()
            sock.setblocking(False)
            try:
                sock.connect(("127.0.0.1", server.port))
            except BlockingIOError:
                pass
            held.append(sock)
        await asyncio.sleep(6)  # the server retries accepting every second
        flood = [line for line in server.lines if "out of system resource" in line]
        assert 1 <= len(flood) <= 10, len(flood)
        assert len(server.log) < 200_000
    finally:
        for sock in held:
            sock.close()
    resource.prlimit(server.process.pid, resource.RLIMIT_NOFILE, (soft, hard))
    await synthesize(server.port, "Still here.")


# -- 6, per address for the queue, in process (a held worker keeps the places taken) ---------
async def test_one_address_cannot_hold_every_queue_place():
    engine = GatedEngine()
    engine.gated = True
    running, server = await start(engine, max_queue=3, max_queue_per_peer=2)
    try:
        payload = encoded("synthesize", {"text": "Hold the worker here."})
        first = asyncio.create_task(events_from("127.0.0.1", running.port, payload))
        await asyncio.to_thread(engine.wait_calls, 1)
        second = asyncio.create_task(events_from("127.0.0.1", running.port, payload))
        await asyncio.sleep(0.2)
        third = await events_from("127.0.0.1", running.port, payload, timeout=10)
        assert [e.type for e in third] == ["error", "audio-stop"]
        assert third[0].data["code"] == "queue-full" and "your address" in third[0].data["text"]
        other = asyncio.create_task(events_from("127.0.0.2", running.port, payload))
        await asyncio.sleep(0.2)
        engine.open()
        for task in (first, second, other):
            events = await task
            assert events[0].type == "audio-start" and events[-1].type == "audio-stop"
    finally:
        await stop(server, running)
