"""The server's own logic, in process and fast: the real Wyoming server, worker, router and
catalog on real sockets with the wyoming client, around a stand-in engine whose frames the
test lets through one by one (gated_engine.py).  Busy and waiting states are held for as long
as a test needs them, never assumed from how fast this machine is."""

from __future__ import annotations

import array
import asyncio

import pytest
from gated_engine import GatedEngine, start, stop
from wyoming.ping import Ping
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop

from wyoming_qwen3_tts.contract import SAMPLES_PER_FRAME
from wyoming_qwen3_tts.dev.serverproc import check_audio, connect, read_until, synthesize
from wyoming_qwen3_tts.server.audio_effects import Gain

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def running(request):
    engine = GatedEngine()
    engine.gated = True
    options = dict(getattr(request, "param", {}))
    state, server = await start(engine, options.pop("loaded", None), **options)
    try:
        yield state
    finally:
        await stop(server, state)


async def queued(client) -> None:
    """Every event sent on `client` so far has been handled (events are handled in order)."""
    await client.write_event(Ping(text="sync").event())
    await read_until(client, "pong", timeout=10)


async def test_clients_take_turns_one_sentence_each(running):
    a, b = await connect(running.port), await connect(running.port)
    try:
        await a.write_event(Synthesize(text="One here. Two here. Three here.").event())
        await asyncio.to_thread(running.engine.wait_calls, 1)  # A's first sentence holds
        await b.write_event(Synthesize(text="Bee.").event())
        await queued(b)
        running.engine.open()
        a_pcm = check_audio(await read_until(a, "audio-stop"))
        b_pcm = check_audio(await read_until(b, "audio-stop"))
    finally:
        await a.disconnect()
        await b.disconnect()
    # B's one sentence came after A's first, not after all of A's
    assert [c.text for c in running.engine.calls] == ["One here.", "Bee.", "Two here.",
                                                      "Three here."]
    assert len(a_pcm) == 2 * SAMPLES_PER_FRAME * sum(c.frames for c in running.engine.calls
                                                     if c.text != "Bee.")
    assert len(b_pcm) == 2 * SAMPLES_PER_FRAME * 1


@pytest.mark.parametrize("running", [{"idle_timeout": 0.3}], indirect=True)
async def test_connections_owed_audio_are_not_idle(running):
    a, b = await connect(running.port), await connect(running.port)
    silent_reader, silent_writer = await asyncio.open_connection("127.0.0.1", running.port)
    try:
        await a.write_event(Synthesize(text="Held for a while.").event())
        await asyncio.to_thread(running.engine.wait_calls, 1)  # being spoken, held
        await b.write_event(Synthesize(text="Waiting.").event())
        await queued(b)  # waiting its turn
        # ten idle timeouts pass while A's audio is held and B waits: only the connection
        # that owes nothing is closed
        assert await asyncio.wait_for(silent_reader.read(), 5) == b""
        await asyncio.sleep(3.0)
        running.engine.open()
        check_audio(await read_until(a, "audio-stop"))
        check_audio(await read_until(b, "audio-stop"))
    finally:
        await a.disconnect()
        await b.disconnect()
        silent_writer.close()


@pytest.mark.parametrize("running", [{"max_queue": 2, "max_queue_per_peer": 2}],
                         indirect=True)
async def test_full_queue_while_the_worker_is_held(running):
    a, b, c = [await connect(running.port) for _ in range(3)]
    try:
        await a.write_event(Synthesize(text="First in line.").event())
        await asyncio.to_thread(running.engine.wait_calls, 1)
        await b.write_event(Synthesize(text="Second.").event())
        await queued(b)
        await c.write_event(Synthesize(text="Third.").event())
        events = await read_until(c, "audio-stop", timeout=10)
        assert [e.type for e in events] == ["error", "audio-stop"]
        assert events[0].data["code"] == "queue-full"
        running.engine.open()
        check_audio(await read_until(a, "audio-stop"))
        check_audio(await read_until(b, "audio-stop"))
        # places are given back: C is served now
        await c.write_event(Synthesize(text="Third again.").event())
        check_audio(await read_until(c, "audio-stop"))
    finally:
        for client in (a, b, c):
            await client.disconnect()


async def test_client_leaving_cancels_its_sentence_within_a_frame(running):
    a = await connect(running.port)
    await a.write_event(Synthesize(text="A rather long sentence to be cut short.").event())
    running.engine.allow(3)
    await read_until(a, "audio-chunk")
    await a.disconnect()
    await asyncio.to_thread(running.engine.wait_calls, 1)
    for _ in range(200):  # the worker notices at its next frame
        if running.engine.calls[0].cancelled:
            break
        await asyncio.sleep(0.05)
    call = running.engine.calls[0]
    assert call.cancelled and call.frames == 3
    # the next client is served
    running.engine.open()
    b = await connect(running.port)
    try:
        await b.write_event(Synthesize(text="Next.").event())
        check_audio(await read_until(b, "audio-stop"))
    finally:
        await b.disconnect()


async def test_failed_sentence_ends_the_request_with_an_error_after_its_audio(running):
    running.engine.open()
    client = await connect(running.port)
    try:
        await client.write_event(Synthesize(text="Fine first. Then FAIL here. Never.").event())
        events = await read_until(client, "audio-stop")
        kinds = [e.type for e in events]
        assert kinds[0] == "audio-start" and kinds[-2:] == ["error", "audio-stop"]
        assert events[-2].data["code"] == "synthesis-failed"
        assert "Never." not in [c.text for c in running.engine.calls]  # skipped
        # the stream on the same connection works afterwards
        await client.write_event(SynthesizeStart().event())
        await client.write_event(SynthesizeChunk(text="Still fine. ").event())
        await client.write_event(SynthesizeStop().event())
        check_audio(await read_until(client, "synthesize-stopped"), streaming=True)
    finally:
        await client.disconnect()


@pytest.mark.parametrize("running", [{"loaded": {"sentence_silence": 0.5,
                                                 "gain": Gain(0.5)}}], indirect=True)
async def test_pauses_between_sentences_and_volume_counted_in_samples(running):
    running.engine.open()
    pcm = await synthesize(running.port, "First sentence here. Second one.")
    calls = running.engine.calls
    frames = [c.frames for c in calls]
    silence = 12000  # 0.5 s at 24 kHz, between the two sentences only
    assert len(pcm) == 2 * (sum(frames) * SAMPLES_PER_FRAME + silence)
    samples = array.array("h", pcm)
    first = frames[0] * SAMPLES_PER_FRAME
    assert not any(samples[first:first + silence])  # the pause, where it belongs
    assert samples[0] != 0 and samples[first + silence] != 0
    # every sample at half the stand-in engine's value (small values: no limiting)
    expected = [(1 * 97 + i) % 2000 + 100 for i in range(frames[0])]
    assert [samples[i * SAMPLES_PER_FRAME] for i in range(frames[0])] == \
        [round(v * 0.5) for v in expected]


@pytest.mark.parametrize("running", [{"loaded": {"detect": True}}], indirect=True)
async def test_text_is_normalized_in_the_detected_language(running):
    running.engine.open()
    await synthesize(running.port, "Es ist 21,5 °C im Wohnzimmer und die Tür ist zu.")
    await synthesize(running.port, "The kitchen is at 21.5 °C now, and the door is locked.")
    first, second = running.engine.calls
    assert first.language == "german" and "einundzwanzig Komma fünf Grad" in first.text
    assert second.language == "english" and "twenty-one point five degrees" in second.text


@pytest.mark.parametrize("running", [{"loaded": {"detect": True}}], indirect=True)
async def test_short_sentences_take_the_answers_or_the_voices_language(running):
    running.engine.open()
    await synthesize(running.port, "OK.", voice="vivian")  # alone: Vivian's own language
    await synthesize(running.port, "OK.")  # the default voice, Ryan: english
    await synthesize(running.port, "Das Licht im Wohnzimmer ist jetzt aus. OK.")
    assert [c.language for c in running.engine.calls] == ["chinese", "english", "german",
                                                          "german"]


@pytest.mark.parametrize("running", [{"loaded": {"detect": True, "normalize": False}}],
                         indirect=True)
async def test_normalization_can_be_turned_off(running):
    running.engine.open()
    await synthesize(running.port, "The kitchen is at 21.5 °C now, and the door is locked.")
    assert running.engine.calls[0].text == "The kitchen is at 21.5 °C now, and the door is " \
                                           "locked."
