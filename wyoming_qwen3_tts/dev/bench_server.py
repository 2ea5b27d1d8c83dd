"""End-to-end figures through the real Wyoming server, as a client sees them.

Starts `python -m wyoming_qwen3_tts` on a free loopback port with the given checkpoint and
measures, with the `wyoming` client, the time to the first audio chunk and the real-time factor
of a one-shot `synthesize` and of a text stream (`synthesize-start/chunk/stop`, the text sent
word by word as an LLM would).  Used by `python -m wyoming_qwen3_tts.dev.bench --server`.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from wyoming.audio import AudioChunk, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.tts import (
    Synthesize,
    SynthesizeChunk,
    SynthesizeStart,
    SynthesizeStop,
    SynthesizeStopped,
)

from ..contract import SAMPLE_RATE
from .serverproc import ServerProcess

TEXT = "The kitchen lights are now off, and the front door is locked."
QUICK_TEXT = "The lights are now off."


async def _one_shot(port: int, text: str) -> dict:
    async with AsyncTcpClient("127.0.0.1", port) as client:
        start = time.perf_counter()
        await client.write_event(Synthesize(text=text).event())
        return await _collect(client, start, AudioStop)


async def _streamed(port: int, text: str, delay: float = 0.05) -> dict:
    async with AsyncTcpClient("127.0.0.1", port) as client:
        start = time.perf_counter()
        await client.write_event(SynthesizeStart().event())

        async def send_words():
            for word in text.split(" "):
                await client.write_event(SynthesizeChunk(text=word + " ").event())
                await asyncio.sleep(delay)
            await client.write_event(SynthesizeStop().event())

        sender = asyncio.create_task(send_words())
        result = await _collect(client, start, SynthesizeStopped)
        await sender
        return result


async def _collect(client, start: float, last_type) -> dict:
    first = None
    samples = 0
    rate = SAMPLE_RATE
    while True:
        event = await client.read_event()
        if event is None:
            raise ConnectionError("server closed the connection")
        if AudioChunk.is_type(event.type):
            chunk = AudioChunk.from_event(event)
            first = first if first is not None else time.perf_counter() - start
            samples += len(chunk.audio) // chunk.width
            rate = chunk.rate
        elif last_type.is_type(event.type):
            break
    total = time.perf_counter() - start
    audio = samples / rate
    return {"first_audio_s": round(first or total, 2), "total_s": round(total, 2),
            "audio_s": round(audio, 2), "rtf": round(total / audio, 2) if audio else None}


def measure_server(folder: Path, threads: int = 0, quick: bool = False,
                   dtype: str = "auto") -> list[dict]:
    server = ServerProcess("--model", str(folder), "--dtype", dtype, "--threads", str(threads),
                           "--language", "english")
    text = QUICK_TEXT if quick else TEXT
    try:
        server.wait_for_log(r"Ready: ", timeout=900)
        asyncio.run(_one_shot(server.port, "Hello."))  # let warm-up and lazy set-up finish
        results = [{"mode": "synthesize (one shot)", **asyncio.run(_one_shot(server.port, text))},
                   {"mode": "streaming (text sent word by word)",
                    **asyncio.run(_streamed(server.port, text))}]
    finally:
        server.stop()
    return results
