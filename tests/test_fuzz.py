"""Fuzzing the running server (subprocess, tiny checkpoint) with hypothesis: raw byte streams
and event sequences.  After every case a normal request must still get all its audio: the PCM
must match, sample for sample and by SHA-256, what the server logged it produced, and be whole
frames.  Examples are few and the texts short, to keep this about a minute."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wyoming_qwen3_tts.contract import SAMPLES_PER_FRAME
from wyoming_qwen3_tts.dev.serverproc import encode_event as encode
from wyoming_qwen3_tts.dev.serverproc import servers, synthesize

FUZZ_SETTINGS = settings(max_examples=30, deadline=None, derandomize=True,
                         suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def server(tiny_custom_voice, tmp_path_factory):
    with servers() as start:
        srv = start("--model", str(tiny_custom_voice),
                    "--data-dir", str(tmp_path_factory.mktemp("data")),
                    "--no-warmup", "--debug", "--threads", "1", "--max-text-chars", "40")
        srv.wait_for_log(r"Ready: ")
        yield srv


def still_serves(server) -> None:
    """A normal request gets all its audio, as the server logged it."""

    pcm = asyncio.run(synthesize(server.port, "Hi.", timeout=60))
    digest = hashlib.sha256(pcm).hexdigest()
    logged = server.wait_for_log(rf"Request audio: 3 chars, frames=(\d+) samples=(\d+) "
                                 rf"sha256={digest}", timeout=30)
    assert len(pcm) // 2 == int(logged[2]) == int(logged[1]) * SAMPLES_PER_FRAME
    assert server.process.poll() is None


async def exchange(port: int, data: bytes, half_close: bool, quiet: float = 0.3,
                   limit: float = 5.0) -> bytes:
    """Send `data`, read what comes until the server closes or is quiet for `quiet` s."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    received = bytearray()
    try:
        writer.write(data)
        if half_close:
            writer.write_eof()
        await writer.drain()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        while (left := deadline - loop.time()) > 0:
            try:
                chunk = await asyncio.wait_for(reader.read(65536), min(quiet, left))
            except asyncio.TimeoutError:
                break
            if not chunk:
                break
            received += chunk
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()
    return bytes(received)


# -- raw bytes -------------------------------------------------------------------------------
TYPES = ["describe", "ping", "synthesize", "synthesize-start", "synthesize-chunk",
         "synthesize-stop", "audio-chunk", "unknown", ""]
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                           max_leaves=6)
lengths = st.one_of(st.integers(-5, 64), st.integers(2**20, 2**40), st.none(),
                    st.sampled_from(["10", 1.5, True, [], {}]))


@st.composite
def raw_header(draw) -> bytes:
    """A header line with arbitrary sizes, sometimes followed by (part of) what it announced."""
    header = {"type": draw(st.sampled_from(TYPES))}
    for key in ("data_length", "payload_length", "data"):
        if draw(st.booleans()):
            header[key] = draw(lengths) if key != "data" else draw(json_values)
    tail = draw(st.binary(max_size=80))
    return json.dumps(header).encode() + b"\n" + tail


@st.composite
def valid_event(draw) -> bytes:
    kind = draw(st.sampled_from(TYPES[:-1]))
    data = draw(st.one_of(st.none(), st.fixed_dictionaries(
        {"text": st.sampled_from(["Hi.", "", "Ok. Yes.", "?"]) | st.text(max_size=6)}),
        st.dictionaries(st.text(max_size=5), json_values, max_size=3)))
    payload = draw(st.binary(max_size=64))
    return encode(kind, data, payload)


NASTY = [
    b'{"type": "synthesize", "data_length": 100000000000}\n',
    b'{"type": "audio-chunk", "payload_length": 1073741824}\n',
    b'{"type": "x"' + b" " * 70000,
    b"[" * 60000 + b"\n",
    b"\n",
    b"\xff\xfe\x00\x01\n",
    b'{"type": "synthesize", "data_length": 40}\n{"te',
]

byte_streams = st.lists(st.one_of(st.binary(max_size=300), valid_event(), raw_header(),
                                  st.sampled_from(NASTY)), min_size=1, max_size=5).map(b"".join)


@FUZZ_SETTINGS
@given(data=byte_streams, half_close=st.booleans())
def test_raw_byte_streams(server, data, half_close):
    asyncio.run(exchange(server.port, data, half_close))
    still_serves(server)


# -- event sequences ---------------------------------------------------------------------------
texts = st.sampled_from(["Hi.", "Ok.", "", "  ", "?!", "Yes. No.", "日本。"]) | st.text(max_size=6)
voices = st.none() | st.fixed_dictionaries({}, optional={
    "name": st.sampled_from(["ryan", "Vivian", "nobody", "../../etc/passwd"]) | st.text(max_size=4),
    "language": st.sampled_from(["en", "de-DE", "xx", "auto"]),
    "speaker": st.text(max_size=4)})
events = st.one_of(
    st.just(("describe", None)),
    st.builds(lambda t: ("ping", {"text": t}), st.text(max_size=4)),
    st.builds(lambda t, v: ("synthesize", {"text": t, **({"voice": v} if v else {})}),
              texts, voices),
    st.builds(lambda v: ("synthesize-start", {"voice": v} if v else {}), voices),
    st.builds(lambda t: ("synthesize-chunk", {"text": t}), texts),
    st.just(("synthesize-stop", None)),
    st.just(("audio-chunk", {"rate": 24000, "width": 2, "channels": 1})),
    st.builds(lambda k: (k, {}), st.text(min_size=1, max_size=6)),
)


def expected_answers(sequence) -> dict[str, int]:
    """How many of each answer the server owes for this sequence."""
    owed = {"info": 0, "pong": 0, "audio-stop": 0, "synthesize-stopped": 0}
    in_stream = False
    for kind, _data in sequence:
        if kind == "describe":
            owed["info"] += 1
        elif kind == "ping":
            owed["pong"] += 1
        elif kind == "synthesize" and not in_stream:
            owed["audio-stop"] += 1
        elif kind == "synthesize-start":
            if in_stream:  # ends the previous stream
                owed["audio-stop"] += 1
                owed["synthesize-stopped"] += 1
            in_stream = True
        elif kind == "synthesize-stop" and in_stream:
            owed["audio-stop"] += 1
            owed["synthesize-stopped"] += 1
            in_stream = False
    return owed



async def converse(port: int, sequence, stay: bool) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"".join(encode(kind, data,
                                     b"\0\0" * 100 if kind == "audio-chunk" else b"")
                              for kind, data in sequence))
        await writer.drain()
        if not stay:
            return
        owed = expected_answers(sequence)
        got = dict.fromkeys(owed, 0)
        in_audio = False
        while got != owed:
            line = await asyncio.wait_for(reader.readline(), 60)
            assert line, f"closed early: got {got}, owed {owed}"
            header = json.loads(line)
            data = json.loads(await reader.readexactly(header["data_length"])) \
                if header.get("data_length") else {}
            if header.get("payload_length"):
                await reader.readexactly(header["payload_length"])
            kind = header["type"]
            assert kind in ("info", "pong", "error", "audio-start", "audio-chunk", "audio-stop",
                            "synthesize-stopped"), kind
            if kind == "error":
                assert data.get("code") and data.get("text"), data
            if kind == "audio-start":
                assert not in_audio
                in_audio = True
            elif kind == "audio-chunk":
                assert in_audio
            elif kind == "audio-stop":
                in_audio = False
            if kind in got:
                got[kind] += 1
                assert got[kind] <= owed[kind], (kind, got, owed)
    finally:
        writer.close()


@FUZZ_SETTINGS
@given(sequence=st.lists(events, min_size=1, max_size=6), stay=st.booleans())
def test_event_sequences(server, sequence, stay):
    asyncio.run(converse(server.port, sequence, stay))
    still_serves(server)


def test_no_crash_or_traceback(server):
    still_serves(server)
    assert not re.search(r"Traceback|Task exception was never retrieved|Exception in callback|"
                         r"socket.send\(\) raised",
                         server.log), server.log[-5000:]
