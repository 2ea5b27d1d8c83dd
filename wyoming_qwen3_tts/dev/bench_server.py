"""End-to-end figures through the real Wyoming server, as a client sees them.

Starts `python -m wyoming_qwen3_tts` on a free loopback port with the given checkpoint and
measures, with the `wyoming` client, the time to the first audio chunk and the real-time factor
of a one-shot `synthesize` and of a text stream (`synthesize-start/chunk/stop`, the text sent
word by word as an LLM would); and, for the same text, the time to the first body bytes of the
HTTP front door's streamed `POST /v1/audio/speech` (pcm, and mp3 as a browser gets it).  The
one-shot Wyoming request and the HTTP pcm request alternate REPEATS times and each row gives
the median, so the two first-audio figures compare like with like.  Used by
`python -m wyoming_qwen3_tts.dev.bench --server`.
"""

from __future__ import annotations

import asyncio
import statistics
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
from .serverproc import ServerProcess, free_port

TEXT = "The kitchen lights are now off, and the front door is locked."
QUICK_TEXT = "The lights are now off."
REPEATS = 3


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


def _http(base: str, text: str, fmt: str = "pcm") -> dict:
    """One streamed POST /v1/audio/speech: time to the first body bytes, total, audio."""
    import httpx  # a test extra (script/setup --test), like the rest of the benchmarks' tools

    body = {"model": "tts-1", "input": text, "response_format": fmt}
    first = None
    received = b""
    with httpx.Client(timeout=600) as client:
        start = time.perf_counter()
        with client.stream("POST", base + "/v1/audio/speech", json=body) as response:
            response.raise_for_status()
            for chunk in response.iter_raw():
                if chunk and first is None:
                    first = time.perf_counter() - start
                received += chunk
        total = time.perf_counter() - start
    if fmt == "pcm":
        audio = len(received) / 2 / 24000
    else:
        import io

        import soundfile

        with soundfile.SoundFile(io.BytesIO(received)) as decoded:
            audio = sum(len(block) for block in decoded.blocks(4096)) / decoded.samplerate
    return {"first_audio_s": round(first or total, 2), "total_s": round(total, 2),
            "audio_s": round(audio, 2), "rtf": round(total / audio, 2) if audio else None}


def _median(runs: list[dict]) -> dict:
    return {key: round(statistics.median(run[key] for run in runs), 2)
            if all(run[key] is not None for run in runs) else None for key in runs[0]}


def measure_server(folder: Path, threads: int = 0, quick: bool = False,
                   dtype: str = "auto", repeats: int = REPEATS) -> list[dict]:
    http_port = free_port()
    base = f"http://127.0.0.1:{http_port}"
    server = ServerProcess("--model", str(folder), "--dtype", dtype, "--threads", str(threads),
                           "--language", "english", "--http", base)
    text = QUICK_TEXT if quick else TEXT
    try:
        server.wait_for_log(r"Ready: ", timeout=900)
        server.wait_for_log(r"HTTP on ", timeout=60)
        asyncio.run(_one_shot(server.port, "Hello."))  # let warm-up and lazy set-up finish
        _http(base, "Hello.")
        wyoming, http = [], []
        for _ in range(repeats):  # alternating, so both see the same machine
            wyoming.append(asyncio.run(_one_shot(server.port, text)))
            http.append(_http(base, text))
        results = [{"mode": f"synthesize (one shot), median of {repeats}", **_median(wyoming)},
                   {"mode": f"HTTP /v1/audio/speech pcm, streamed, median of {repeats}",
                    **_median(http)},
                   {"mode": "HTTP /v1/audio/speech mp3, streamed", **_http(base, text, "mp3")},
                   {"mode": "streaming (text sent word by word)",
                    **asyncio.run(_streamed(server.port, text))}]
        ratio = results[1]["first_audio_s"] / max(results[0]["first_audio_s"], 1e-9)
        results[1]["mode"] += f" (first audio {ratio:.2f}x Wyoming's)"
    finally:
        server.stop()
    return results
