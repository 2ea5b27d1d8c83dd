"""Reading Wyoming events from an untrusted peer, within bounds.

The library's `async_read_event` believes whatever a client announces: a header line of any
length, and `data_length` / `payload_length` bytes read in one go, so one line such as
`{"type": "x", "payload_length": 100000000000}` makes a server try to allocate 100 GB.  Here
every size is checked before anything is read or allocated:

- the header line (JSON ending in a newline) may be at most `max_header` bytes;
- `data_length` and `payload_length` must be absent, null or integers in 0..max_data /
  0..max_payload (a TTS server is never sent audio, so the payload bound is small);
- the header must be a JSON object with a string `type`, and inline `data` and the data block
  must be JSON objects.

Anything else raises ProtocolError; the caller closes that connection (and only that one).
The stream is read in slices of at most READ_SIZE bytes into one buffer, so a connection never
holds more than the bounds plus one slice.  Events are the library's `Event`; writing stays
the library's.
"""

from __future__ import annotations

import asyncio
import json

from wyoming.event import Event

MAX_HEADER_BYTES = 64 * 1024
MAX_DATA_BYTES = 1024 * 1024
MAX_PAYLOAD_BYTES = 1024 * 1024
READ_SIZE = 64 * 1024


class ProtocolError(Exception):
    """The peer sent something that is not a Wyoming event within our bounds."""


def _length(header: dict, key: str, limit: int) -> int:
    value = header.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtocolError(f"{key} must be an integer")
    if not 0 <= value <= limit:
        raise ProtocolError(f"{key} {value} is outside 0..{limit}")
    return value


def _json_object(raw: bytes | bytearray, what: str) -> dict:
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as err:  # UnicodeDecodeError is a ValueError
        raise ProtocolError(f"{what} is not valid JSON") from err
    if not isinstance(value, dict):
        raise ProtocolError(f"{what} is not a JSON object")
    return value


class EventReader:
    """Reads one event after another from `reader`; see the module docstring."""

    def __init__(self, reader: asyncio.StreamReader, *, max_header: int = MAX_HEADER_BYTES,
                 max_data: int = MAX_DATA_BYTES, max_payload: int = MAX_PAYLOAD_BYTES) -> None:
        self._reader = reader
        self.max_header = max_header
        self.max_data = max_data
        self.max_payload = max_payload
        self._buffer = bytearray()
        self._scanned = 0  # bytes of the buffer already known to hold no newline
        self.events = 0  # complete events read so far

    async def _fill(self, wanted: int) -> bool:
        """Read up to `wanted` more bytes (at most READ_SIZE); False at end of stream."""
        chunk = await self._reader.read(max(1, min(wanted, READ_SIZE)))
        if not chunk:
            return False
        self._buffer += chunk
        return True

    def _take(self, size: int) -> bytes:
        taken = bytes(self._buffer[:size])
        del self._buffer[:size]
        self._scanned = 0
        return taken

    async def _read_line(self) -> bytes | None:
        while True:
            end = self._buffer.find(b"\n", self._scanned)
            if end >= 0:
                if end + 1 > self.max_header:
                    raise ProtocolError(f"event header longer than {self.max_header} bytes")
                return self._take(end + 1)
            self._scanned = len(self._buffer)
            if len(self._buffer) > self.max_header:
                raise ProtocolError(f"event header longer than {self.max_header} bytes")
            if not await self._fill(self.max_header + 1 - len(self._buffer)):
                if self._buffer:
                    raise ProtocolError("connection closed inside an event header")
                return None

    async def _read_exactly(self, size: int, what: str) -> bytes:
        while len(self._buffer) < size:
            if not await self._fill(size - len(self._buffer)):
                raise ProtocolError(f"connection closed inside an event's {what}")
        return self._take(size)

    async def read_event(self) -> Event | None:
        """The next event; None when the peer closed the connection between events."""
        line = await self._read_line()
        if line is None:
            return None
        header = _json_object(line, "event header")
        kind = header.get("type")
        if not isinstance(kind, str) or not kind:
            raise ProtocolError("event header has no type")
        data = header.get("data")
        if data is None:
            data = {}
        elif not isinstance(data, dict):
            raise ProtocolError("event data is not a JSON object")
        # both sizes are checked before either block is read
        data_length = _length(header, "data_length", self.max_data)
        payload_length = _length(header, "payload_length", self.max_payload)
        if data_length:
            data.update(_json_object(await self._read_exactly(data_length, "data"),
                                     "event data"))
        payload = await self._read_exactly(payload_length, "payload") if payload_length else None
        self.events += 1
        return Event(type=kind, data=data, payload=payload)
