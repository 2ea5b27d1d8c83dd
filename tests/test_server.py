"""The real server as a subprocess, with the tiny random checkpoint, driven by wyoming's client.

The tiny model never stops by itself: every segment runs to the engine's frame cap, which
grows with the text, so texts here are short.  The server logs (at debug level) every
segment's frame count and at which frame its first audio left, and every request's sample
count and SHA-256 of the PCM the worker produced; the tests compare those with what the client
received.
"""

from __future__ import annotations

import array
import asyncio
import hashlib
import json
import re
import time

import pytest
from wyoming.event import Event
from wyoming.info import Describe, Info
from wyoming.ping import Ping
from wyoming.tts import (
    Synthesize,
    SynthesizeChunk,
    SynthesizeStart,
    SynthesizeStop,
    SynthesizeVoice,
)

from wyoming_qwen3_tts import __version__
from wyoming_qwen3_tts.contract import SAMPLES_PER_FRAME
from wyoming_qwen3_tts.dev.serverproc import (
    check_audio,
    connect,
    read_until,
    synthesize,
)

MAX_TEXT_CHARS = 200
MAX_STREAM_CHARS = 400


@pytest.fixture(scope="module")
def server(start_server, tiny_custom_voice, tmp_path_factory):
    srv = start_server("--model", str(tiny_custom_voice),
                       "--data-dir", str(tmp_path_factory.mktemp("data")),
                       "--no-warmup", "--debug", "--max-text-chars", str(MAX_TEXT_CHARS),
                       "--max-stream-chars", str(MAX_STREAM_CHARS),
                       # one thread: CI machines are small and shared; oversubscribed torch
                       # threads spin and make runs erratic
                       "--threads", "1")
    srv.wait_for_log(r"Ready: ")
    return srv


@pytest.fixture(scope="module")
def speakers(tiny_custom_voice) -> list[str]:
    config = json.loads((tiny_custom_voice / "config.json").read_text())
    return list(config["talker_config"]["spk_id"])


# -- helpers ---------------------------------------------------------------------------------
def peak(pcm: bytes) -> int:
    samples = array.array("h", pcm)
    return max(abs(s) for s in samples)


def request_log(server, chars: int, after: int) -> tuple[int, int, str]:
    """(frames, samples, sha256) the server logged for the request of `chars` characters."""
    match = server.wait_for_log(
        rf"Request audio: {chars} chars, frames=(\d+) samples=(\d+) sha256=(\w+)", after=after)
    return int(match[1]), int(match[2]), match[3]


def segment_lines(server, after: int) -> list[re.Match]:
    regex = re.compile(r"Segment: (\d+) chars, .* (\d+) frames \(first audio after (\d+) of")
    return [m for line in server.lines[after:] if (m := regex.search(line))]


# -- describe --------------------------------------------------------------------------------
async def test_describe_lists_every_speaker_with_all_languages(server, speakers):
    client = await connect(server.port)
    try:
        await client.write_event(Describe().event())
        info = Info.from_event((await read_until(client, "info"))[-1])
        await client.write_event(Ping(text="hi").event())
        pong = await read_until(client, "pong")
    finally:
        await client.disconnect()
    assert pong[-1].data["text"] == "hi"
    assert len(info.tts) == 1
    program = info.tts[0]
    assert program.installed and program.version == __version__
    assert program.supports_synthesize_streaming
    assert program.attribution.url == "https://github.com/QwenLM/Qwen3-TTS"
    assert [v.name for v in program.voices] == speakers
    for voice in program.voices:
        assert voice.installed and voice.description
        assert voice.languages == [
            "zh-CN", "zh-TW", "zh-HK", "zh-Hans", "zh-Hant", "zh",
            "en-US", "en-GB", "en-AU", "en-CA", "en-IE", "en-IN", "en-NZ", "en",
            "de-DE", "de-AT", "de-CH", "de", "it-IT", "it-CH", "it", "pt-BR", "pt-PT", "pt",
            "es-ES", "es-MX", "es-US", "es-AR", "es-419", "es", "ja-JP", "ja", "ko-KR", "ko",
            "fr-FR", "fr-CA", "fr-BE", "fr-CH", "fr", "ru-RU", "ru"]
    assert "loading" not in program.description


# -- synthesize ------------------------------------------------------------------------------
async def test_synthesize_streams_audio_as_it_is_generated(server):
    text = "Hello there."
    mark = server.mark()
    pcm = await synthesize(server.port, text)
    assert peak(pcm) > 300, "audio is silent"

    frames, samples, digest = request_log(server, len(text), mark)
    assert len(pcm) // 2 == samples == frames * SAMPLES_PER_FRAME
    assert hashlib.sha256(pcm).hexdigest() == digest
    (segment,) = segment_lines(server, mark)
    first_audio_frame, segment_frames = int(segment[3]), int(segment[2])
    # the first chunk left the engine while most frames were still to be generated
    assert segment_frames == frames and first_audio_frame < frames // 2
    assert re.search(rf"Synthesize: {len(text)} chars, 1 segment\(s\), voice=ryan, "
                     r"language=english, first audio [\d.]+ s, total [\d.]+ s, .* RTF [\d.]+",
                     server.log)


async def test_long_text_is_spoken_sentence_by_sentence_in_order(server):
    sentences = ["First one.", "Two more.", "And three here."]
    text = " ".join(sentences)
    mark = server.mark()
    pcm = await synthesize(server.port, text)
    frames, samples, digest = request_log(server, len(text), mark)
    assert [int(m[1]) for m in segment_lines(server, mark)] == [len(s) for s in sentences]
    assert len(pcm) // 2 == samples == frames * SAMPLES_PER_FRAME
    assert hashlib.sha256(pcm).hexdigest() == digest


# -- streaming -------------------------------------------------------------------------------
def deltas(text: str, size: int = 3) -> list[str]:
    """Split anywhere, mid-word included."""
    return [text[i:i + size] for i in range(0, len(text), size)]


async def test_stream_speaks_finished_sentences_before_the_stream_ends(server):
    first, rest = "Good morning. Th", "e lights are on."
    mark = server.mark()
    client = await connect(server.port)
    try:
        await client.write_event(SynthesizeStart(voice=SynthesizeVoice(name="Vivian")).event())
        for delta in deltas(first):
            await client.write_event(SynthesizeChunk(text=delta).event())
        # "Good morning." is complete: its audio comes before the rest of the text is sent
        early = await read_until(client, "audio-chunk")
        for delta in deltas(rest):
            await client.write_event(SynthesizeChunk(text=delta).event())
        await client.write_event(Synthesize(text=first + rest).event())  # compatibility copy
        await client.write_event(SynthesizeStop().event())
        events = early + await read_until(client, "synthesize-stopped")
        # nothing else follows (the compatibility synthesize was not spoken)
        await client.write_event(Ping(text="after").event())
        assert [e.type for e in await read_until(client, "pong")] == ["pong"]
    finally:
        await client.disconnect()
    pcm = check_audio(events, streaming=True)
    frames, samples, digest = request_log(server, len(first + rest), mark)
    assert len(pcm) // 2 == samples == frames * SAMPLES_PER_FRAME
    assert hashlib.sha256(pcm).hexdigest() == digest
    assert [int(m[1]) for m in segment_lines(server, mark)] == [13, 18]
    assert re.search(rf"Stream: {len(first + rest)} chars, 2 segment\(s\), voice=vivian",
                     server.log)


async def test_streams_and_requests_share_one_connection(server):
    client = await connect(server.port)
    try:
        for text in ("First stream.", "Second one, no end mark"):
            await client.write_event(SynthesizeStart().event())
            for delta in deltas(text, 5):
                await client.write_event(SynthesizeChunk(text=delta).event())
            await client.write_event(SynthesizeStop().event())  # no compatibility synthesize
            check_audio(await read_until(client, "synthesize-stopped"), streaming=True)
        # two plain requests sent back to back are answered in order
        await client.write_event(Synthesize(text="Okay.").event())
        await client.write_event(Synthesize(text="Yes.").event())
        first = await read_until(client, "audio-stop")
        second = await read_until(client, "audio-stop")
    finally:
        await client.disconnect()
    assert len(check_audio(first)) > len(check_audio(second))  # 5 vs 4 characters


# -- concurrency -----------------------------------------------------------------------------
async def test_concurrent_clients_each_get_only_their_own_audio(server):
    texts = ["Hi.", "Hello, how are you?"]
    mark = server.mark()

    async def speak(text: str, delay: float) -> bytes:
        await asyncio.sleep(delay)
        client = await connect(server.port)
        try:
            await client.write_event(Synthesize(text=text).event())
            return check_audio(await read_until(client, "audio-stop"))
        finally:
            await client.disconnect()

    results = await asyncio.gather(speak(texts[0], 0.0), speak(texts[1], 0.2))
    for text, pcm in zip(texts, results, strict=True):
        frames, samples, digest = request_log(server, len(text), mark)
        assert len(pcm) // 2 == samples == frames * SAMPLES_PER_FRAME
        assert hashlib.sha256(pcm).hexdigest() == digest
    # served in arrival order
    assert [int(m[1]) for m in segment_lines(server, mark)] == [len(t) for t in texts]


async def test_describe_and_ping_answer_at_once_during_synthesis(server):
    busy = await connect(server.port)
    try:
        await busy.write_event(Synthesize(text="Please read this rather long sentence.").event())
        events = await read_until(busy, "audio-chunk")
        started = time.monotonic()
        other = await connect(server.port)
        try:
            await other.write_event(Describe().event())
            await read_until(other, "info", timeout=5)
        finally:
            await other.disconnect()
        assert time.monotonic() - started < 1.0
        # on the busy connection itself, pong comes between the audio chunks
        await busy.write_event(Ping(text="busy").event())
        events += await read_until(busy, "pong")
        assert "audio-stop" not in [e.type for e in events]
        events += await read_until(busy, "audio-stop")
    finally:
        await busy.disconnect()
    check_audio([e for e in events if e.type != "pong"])


# -- errors ----------------------------------------------------------------------------------
ERRORS = {
    "empty": ({"text": ""}, "empty-text"),
    "whitespace": ({"text": "  \n\t "}, "empty-text"),
    "no words": ({"text": "... !!"}, "empty-text"),
    "unknown voice": ({"text": "Hi.", "voice": {"name": "nobody"}}, "unknown-voice"),
    "unknown language": ({"text": "Hi.", "voice": {"name": "ryan", "language": "nl-NL"}},
                         "unsupported-language"),
    "too long": ({"text": "Hi. " * (MAX_TEXT_CHARS // 4 + 1)}, "text-too-long"),
}


@pytest.mark.parametrize("case", ERRORS)
async def test_bad_request_gets_error_then_audio_stop(server, case):
    data, code = ERRORS[case]
    client = await connect(server.port)
    try:
        await client.write_event(Event(type="synthesize", data=data))
        events = await read_until(client, "audio-stop")
        assert [e.type for e in events] == ["error", "audio-stop"]
        assert events[0].data["code"] == code and events[0].data["text"]
        await client.write_event(Synthesize(text="Ok.").event())  # the connection still works
        check_audio(await read_until(client, "audio-stop"))
    finally:
        await client.disconnect()


STREAM_ERRORS = {
    "empty stream": ({}, [], "empty-text"),
    "unknown voice": ({"voice": {"name": "nobody"}}, ["Hi."], "unknown-voice"),
    # before any audio: the first chunk alone is over the stream's limit
    "too long": ({}, ["Hi there " * (MAX_STREAM_CHARS // 9 + 1)], "text-too-long"),
}


@pytest.mark.parametrize("case", STREAM_ERRORS)
async def test_bad_stream_gets_error_audio_stop_and_synthesize_stopped(server, case):
    start, chunks, code = STREAM_ERRORS[case]
    client = await connect(server.port)
    try:
        await client.write_event(Event(type="synthesize-start", data=start))
        for text in chunks:
            await client.write_event(SynthesizeChunk(text=text).event())
        await client.write_event(SynthesizeStop().event())
        events = await read_until(client, "synthesize-stopped")
        assert [e.type for e in events] == ["error", "audio-stop", "synthesize-stopped"]
        assert events[0].data["code"] == code and events[0].data["text"]
        # the next stream on the same connection works
        await client.write_event(SynthesizeStart().event())
        await client.write_event(SynthesizeChunk(text="Fine.").event())
        await client.write_event(SynthesizeStop().event())
        check_audio(await read_until(client, "synthesize-stopped"), streaming=True)
    finally:
        await client.disconnect()


@pytest.mark.parametrize("garbage", [
    b"this is not json\n",
    b'{"type": "synthesize", "data_length": 10000000000}\n',
    b'{"type": "synthesize", "payload_length": -5}\n',
])
async def test_malformed_event_closes_only_that_connection(server, garbage):
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(garbage)
        await writer.drain()
        header = json.loads(await asyncio.wait_for(reader.readline(), 10))
        assert header["type"] == "error"
        await asyncio.wait_for(reader.readexactly(header["data_length"]), 10)
        assert await asyncio.wait_for(reader.read(), 10) == b""  # closed by the server
    finally:
        writer.close()
    client = await connect(server.port)
    try:
        await client.write_event(Describe().event())
        await read_until(client, "info")
    finally:
        await client.disconnect()


async def test_client_leaving_mid_stream_cancels_its_generation(server):
    text = "Tell me a long story about the sea and the sky."
    mark = server.mark()
    client = await connect(server.port)
    await client.write_event(SynthesizeStart().event())
    for delta in deltas(text, 7):
        await client.write_event(SynthesizeChunk(text=delta).event())
    await client.write_event(SynthesizeStop().event())
    await read_until(client, "audio-chunk")
    await client.disconnect()

    server.wait_for_log(r"Client disconnected: cancelled 1 unfinished request", after=mark)
    cancelled = server.wait_for_log(r"Segment: \d+ chars, .* (\d+) frames .*, cancelled",
                                    after=mark)
    assert int(cancelled[1]) < 2 * len(text)  # stopped well before the frame cap
    # the server goes on serving
    client = await connect(server.port)
    try:
        await client.write_event(Synthesize(text="Still here.").event())
        check_audio(await read_until(client, "audio-stop"))
    finally:
        await client.disconnect()


async def test_stream_longer_than_max_text_chars_is_spoken_whole(server):
    # an LLM's long answer: --max-text-chars bounds one synthesize, not a stream's sentences
    sentences = [f"Sentence number {word} is here." for word in
                 ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine")]
    text = " ".join(sentences)
    assert MAX_TEXT_CHARS < len(text) < MAX_STREAM_CHARS
    mark = server.mark()
    client = await connect(server.port)
    try:
        await client.write_event(SynthesizeStart().event())
        for delta in deltas(text, 11):
            await client.write_event(SynthesizeChunk(text=delta).event())
        await client.write_event(SynthesizeStop().event())
        pcm = check_audio(await read_until(client, "synthesize-stopped"), streaming=True)
    finally:
        await client.disconnect()
    frames, samples, digest = request_log(server, len(text), mark)
    assert [int(m[1]) for m in segment_lines(server, mark)] == [len(s) for s in sentences]
    assert len(pcm) // 2 == samples == frames * SAMPLES_PER_FRAME
    assert hashlib.sha256(pcm).hexdigest() == digest
