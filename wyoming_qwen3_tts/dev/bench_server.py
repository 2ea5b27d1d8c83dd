"""End-to-end figures through the real Wyoming server, as a client sees them.

Starts `python -m wyoming_qwen3_tts` on a free loopback port with the given checkpoint and
measures, with the `wyoming` client, the time to the first audio chunk and the real-time factor
of a one-shot `synthesize` and of a text stream (`synthesize-start/chunk/stop`, the text sent
word by word as an LLM would).  Used by `python -m wyoming_qwen3_tts.dev.bench --server`.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from wyoming.audio import AudioChunk, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.info import Describe, Info
from wyoming.tts import (
    Synthesize,
    SynthesizeChunk,
    SynthesizeStart,
    SynthesizeStop,
    SynthesizeStopped,
)

TEXT = "The kitchen lights are now off, and the front door is locked."
QUICK_TEXT = "The lights are now off."


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _wait_ready(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            async with AsyncTcpClient("127.0.0.1", port) as client:
                await client.write_event(Describe().event())
                event = await asyncio.wait_for(client.read_event(), 2)
                if event is not None and Info.is_type(event.type):
                    return
        except (OSError, asyncio.TimeoutError):
            pass
        await asyncio.sleep(0.5)
    raise TimeoutError("server did not answer describe")


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
    rate = 24000
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
    port = _free_port()
    cmd = [sys.executable, "-m", "wyoming_qwen3_tts", "--uri", f"tcp://127.0.0.1:{port}",
           "--model", str(folder), "--dtype", dtype, "--threads", str(threads),
           "--language", "english"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    text = QUICK_TEXT if quick else TEXT
    try:
        asyncio.run(_wait_ready(port, 600))
        asyncio.run(_one_shot(port, "Hello."))  # let warm-up and lazy set-up finish
        results = [{"mode": "synthesize (one shot)", **asyncio.run(_one_shot(port, text))},
                   {"mode": "streaming (text sent word by word)",
                    **asyncio.run(_streamed(port, text))}]
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    return results
