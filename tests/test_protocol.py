"""The bounded event reader, in process: what it accepts, what it refuses, what it allocates."""

from __future__ import annotations

import asyncio
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wyoming.event import Event, async_write_event
from wyoming.tts import Synthesize, SynthesizeVoice

from wyoming_qwen3_tts.server.protocol import EventReader, ProtocolError


class _Sink:
    """Enough of a StreamWriter for wyoming's async_write_event."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data

    def writelines(self, parts) -> None:
        for part in parts:
            self.data += part

    async def drain(self) -> None:
        pass


async def encode(*events: Event) -> bytes:
    sink = _Sink()
    for event in events:
        await async_write_event(event, sink)
    return bytes(sink.data)


def reader_of(data: bytes, eof: bool = True) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    if eof:
        reader.feed_eof()
    return reader


async def read_all(data: bytes, **limits) -> list[Event]:
    events = EventReader(reader_of(data), **limits)
    found = []
    while (event := await events.read_event()) is not None:
        found.append(event)
    return found


async def test_reads_what_the_library_writes():
    events = [
        Synthesize(text="Hello there. " * 50, voice=SynthesizeVoice(name="ryan")).event(),
        Event(type="ping", data={"text": "x"}),
        Event(type="audio-chunk", data={"rate": 24000, "width": 2, "channels": 1},
              payload=b"\x01\x02" * 1000),
        Event(type="describe"),
    ]
    got = await read_all(await encode(*events))
    assert [(e.type, e.data, e.payload) for e in got] == [
        (e.type, e.data, e.payload or None) for e in events]


async def test_inline_data_is_merged_with_the_data_block():
    data = json.dumps({"text": "hi"}).encode()
    raw = (json.dumps({"type": "synthesize", "data": {"a": 1}, "data_length": len(data)})
           .encode() + b"\n" + data)
    (event,) = await read_all(raw)
    assert event.data == {"a": 1, "text": "hi"}


BAD = {
    "not json": b"hello\n",
    "binary": b"\x00\xff\xfe\n",
    "json list": b"[1, 2]\n",
    "no type": b'{"data": {}}\n',
    "type not a string": b'{"type": 5}\n',
    "empty line": b"\n",
    "data not an object": b'{"type": "x", "data": [1]}\n',
    "negative data_length": b'{"type": "x", "data_length": -1}\n',
    "negative payload_length": b'{"type": "x", "payload_length": -5}\n',
    "float length": b'{"type": "x", "payload_length": 1.5}\n',
    "string length": b'{"type": "x", "data_length": "10"}\n',
    "bool length": b'{"type": "x", "data_length": true}\n',
    "huge data_length": b'{"type": "x", "data_length": 10000000000}\n',
    "huge payload_length": b'{"type": "x", "payload_length": 100000000000000}\n',
    "data block not json": b'{"type": "x", "data_length": 3}\nabc',
    "data block a list": b'{"type": "x", "data_length": 2}\n[]',
    "truncated data": b'{"type": "x", "data_length": 30}\n{"text"',
    "truncated payload": b'{"type": "x", "payload_length": 30}\nabc',
    "truncated header": b'{"type": "x"',
    "deep nesting": b"[" * 50000 + b"\n",
    "huge integer": b'{"type": "x", "data_length": ' + b"9" * 5000 + b"}\n",
}


@pytest.mark.parametrize("case", BAD)
async def test_malformed_events_are_refused(case):
    with pytest.raises(ProtocolError):
        await read_all(BAD[case])


async def test_sizes_are_checked_before_reading():
    """An oversize announcement is refused at once, without waiting for (or allocating) the
    announced bytes: the stream is still open and nothing follows the header."""
    for header in (b'{"type": "x", "payload_length": 2000000}\n',
                   b'{"type": "x", "data_length": 2000000}\n',
                   b'{"type": "x", "data_length": 5, "payload_length": 99999999999}\n'):
        events = EventReader(reader_of(header, eof=False))
        with pytest.raises(ProtocolError, match="outside"):
            await asyncio.wait_for(events.read_event(), 1)


async def test_header_line_is_bounded_without_a_newline():
    reader = reader_of(b"x" * 10_000, eof=False)  # never ends: must not wait for more
    events = EventReader(reader, max_header=4096)
    with pytest.raises(ProtocolError, match="longer than"):
        await asyncio.wait_for(events.read_event(), 1)
    assert len(events._buffer) <= 4096 + 1


async def test_limits_are_inclusive():
    payload = b"a" * 100
    raw = await encode(Event(type="x", payload=payload))
    assert (await read_all(raw, max_payload=100))[0].payload == payload
    with pytest.raises(ProtocolError):
        await read_all(raw, max_payload=99)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=3000), st.integers(1, 64))
def test_arbitrary_bytes_either_parse_or_raise_protocol_error(data, split):
    """Any byte stream, fed in any slicing: events or ProtocolError, nothing else, and the
    reader never buffers more than its bounds."""

    async def run() -> None:
        reader = asyncio.StreamReader()
        events = EventReader(reader, max_header=512, max_data=256, max_payload=256)
        for i in range(0, len(data), split):
            reader.feed_data(data[i:i + split])
        reader.feed_eof()
        try:
            while (event := await events.read_event()) is not None:
                assert isinstance(event.type, str) and isinstance(event.data, dict)
                assert event.payload is None or len(event.payload) <= 256
        except ProtocolError:
            pass
        assert len(events._buffer) <= 512 + 1 + 256

    asyncio.run(run())
