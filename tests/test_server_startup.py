"""Server start-up: describe while the model loads, other options, a model that fails to load."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time

from wyoming.client import AsyncTcpClient
from wyoming.event import read_event, write_event
from wyoming.info import Describe, Info
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop

from wyoming_qwen3_tts.dev.serverproc import check_audio, read_until


async def connect_soon(port: int, timeout: float = 60.0) -> AsyncTcpClient:
    """Connect as soon as the server listens."""
    deadline = time.monotonic() + timeout
    while True:
        client = AsyncTcpClient("127.0.0.1", port)
        try:
            await client.connect()
            return client
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


async def test_describe_while_loading_then_options_apply(start_server, tiny_custom_voice,
                                                         tmp_path):
    server = start_server("--model", str(tiny_custom_voice), "--data-dir", str(tmp_path),
                          "--threads", "1", "--no-streaming", "--samples-per-chunk", "500",
                          "--voice", "Sohee", "--debug")
    client = await connect_soon(server.port)
    try:
        # the model is still loading (torch is not even imported before the port opens)...
        started = time.monotonic()
        await client.write_event(Describe().event())
        info = Info.from_event((await read_until(client, "info", timeout=5))[-1])
        assert time.monotonic() - started < 1.0
        assert "Ready: " not in server.log
        program = info.tts[0]
        assert "loading" in program.description
        # ...yet the voices are the real ones, read from the checkpoint's config.json
        assert "sohee" in [v.name for v in program.voices]
        assert not program.supports_synthesize_streaming  # --no-streaming
        # a request sent while loading waits for the model
        await client.write_event(Synthesize(text="Hello there.").event())
        check_audio(await read_until(client, "audio-stop"), samples_per_chunk=500)
        assert "Ready: " in server.log
        server.wait_for_log(r"Synthesize: .*voice=sohee")  # --voice, matched in any case

        # with streaming off, Home Assistant's stream is answered through the compatibility
        # synthesize, and synthesize-stop still gets synthesize-stopped
        await client.write_event(SynthesizeStart().event())
        await client.write_event(SynthesizeChunk(text="Fine, thanks.").event())
        await client.write_event(Synthesize(text="Fine, thanks.").event())
        await client.write_event(SynthesizeStop().event())
        events = await read_until(client, "synthesize-stopped")
        check_audio(events[:-1], samples_per_chunk=500)
    finally:
        await client.disconnect()
    assert server.stop() == 0
    assert "Stopping" in server.log


async def test_model_that_cannot_load_fails_requests_and_exits(start_server, tiny_custom_voice,
                                                               tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_custom_voice, broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    server = start_server("--model", str(broken), "--data-dir", str(tmp_path / "data"))
    client = await connect_soon(server.port)
    try:
        await client.write_event(Synthesize(text="Hello.").event())
        events = await read_until(client, "audio-stop")
    finally:
        await client.disconnect()
    assert [e.type for e in events] == ["error", "audio-stop"]
    assert events[0].data["code"] == "model-not-loaded"
    server.process.wait(60)
    assert server.process.returncode == 1
    assert "Could not load" in server.log


def test_stdio_keeps_the_event_stream_clean(tiny_custom_voice, tmp_path):
    """Over stdio://, stdout carries only events (the model code's printed banners go to the
    log), and the server exits when stdin closes."""
    process = subprocess.Popen(
        [sys.executable, "-m", "wyoming_qwen3_tts", "--uri", "stdio://", "--model",
         str(tiny_custom_voice), "--data-dir", str(tmp_path), "--no-warmup", "--threads", "1"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        write_event(Describe().event(), process.stdin)
        write_event(Synthesize(text="Hello there.").event(), process.stdin)
        events = []
        while not events or events[-1].type != "audio-stop":
            event = read_event(process.stdout)
            assert event is not None, process.stderr.read().decode()
            events.append(event)
        assert events[0].type == "info"
        check_audio(events[1:])
        process.stdin.close()
        assert process.wait(60) == 0
        assert process.stdout.read() == b""
        assert b"flash-attn" in process.stderr.read()  # qwen_tts's banner, kept off stdout
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
