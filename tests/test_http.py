"""The HTTP front door against the real server (tiny CustomVoice, VoiceDesign and Base
checkpoints): the real `openai` client, every response format decoded, streaming, speed,
instructions, errors in OpenAI's shape; voice management with an HTTP client, each change
visible to Wyoming's `describe` at once; folders changed by hand; the API key and the trusted
proxy.  No timing is asserted anywhere (deadlines only bound how long a test may wait)."""

from __future__ import annotations

import asyncio
import io
import json
import re
import shutil
import time

import httpx
import numpy as np
import openai
import pytest
import soundfile
from test_cloning import write_clip
from wyoming.info import Describe, Info
from wyoming.tts import Synthesize

from wyoming_qwen3_tts.dev.serverproc import free_port, request_events, synthesize

TEXT = "Hello there. The kitchen lights are off."
MP3_SLACK = 2 * 1152 + 1105  # LAME's encoder delay and padding, at most


def http_server(start, *models, extra=()):
    port = free_port()
    server = start(*models, "--http", f"http://127.0.0.1:{port}", "--no-warmup", "--debug",
                   "--threads", "1", *extra)
    server.wait_for_log(r"Ready: ")
    server.wait_for_log(r"HTTP on ")
    server.http = f"http://127.0.0.1:{port}"
    return server


@pytest.fixture(scope="module")
def server(start_server, tiny_custom_voice, tiny_voice_design, tiny_base, tmp_path_factory):
    voices = tmp_path_factory.mktemp("voices")
    data = tmp_path_factory.mktemp("data")
    return http_server(start_server, "--model", str(tiny_custom_voice),
                       "--model", str(tiny_voice_design), "--model", str(tiny_base),
                       extra=("--voices-dir", str(voices), "--data-dir", str(data),
                              "--language", "english"))


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.http + "/v1", api_key="unused", max_retries=0,
                         timeout=120)


@pytest.fixture
def http(server):
    with httpx.Client(base_url=server.http, timeout=120) as session:
        yield session


def produced_samples(server, after: int) -> int:
    """Samples the server produced for the request answered after log position `after`."""
    return int(server.wait_for_log(r"Request audio: .* samples=(\d+)", after=after)[1])


def decode(data: bytes, fmt: str) -> tuple[np.ndarray, int]:
    """Samples and rate of an answer; streamed files say "length unknown", so read to the end
    (libsndfile itself, where soundfile's frame bookkeeping needs a length)."""
    if fmt == "pcm":
        return np.frombuffer(data, dtype="<i2"), 24000
    with soundfile.SoundFile(io.BytesIO(data)) as file:
        rate = file.samplerate
        assert file.channels == 1
        if fmt != "flac":
            return file.read(dtype="int16"), rate
        from soundfile import _ffi, _snd

        out, block = [], np.zeros(4096, dtype=np.int16)
        while (got := _snd.sf_readf_short(file._file, _ffi.cast("short*", block.ctypes.data),
                                          len(block))) > 0:
            out.append(block[:got].copy())
        return np.concatenate(out), rate


async def voice_names(port: int) -> set[str]:
    events = await request_events(port, Describe().event(), last="info")
    info = Info.from_event(events[-1])
    return {voice.name for voice in info.tts[0].voices}


def describe(server) -> set[str]:
    return asyncio.run(voice_names(server.port))


# -- speech through the OpenAI client ---------------------------------------------------------
@pytest.mark.parametrize("fmt", ["mp3", "opus", "flac", "wav", "pcm"])
def test_openai_client_every_format_decodes_to_24khz(server, client, fmt):
    mark = server.mark()
    answer = client.audio.speech.create(model="tts-1", voice="ryan", input=TEXT,
                                        response_format=fmt)
    samples, rate = decode(answer.content, fmt)
    produced = produced_samples(server, mark)
    assert rate == 24000 and produced > 0
    if fmt == "mp3":  # lossy with an encoder delay: a little longer, never shorter
        assert produced <= len(samples) <= produced + MP3_SLACK, (len(samples), produced)
    else:
        assert len(samples) == produced
    assert np.abs(samples.astype(np.int32)).max() > 100, "not silence"


def test_openai_streaming_response_arrives_in_chunks(server, client):
    mark = server.mark()
    with client.audio.speech.with_streaming_response.create(
            model="gpt-4o-mini-tts", voice="vivian", input=TEXT, response_format="pcm") as r:
        assert r.headers.get("transfer-encoding") == "chunked"
        assert "content-length" not in r.headers
        assert r.headers["content-type"] == "audio/pcm"
        chunks = [chunk for chunk in r.iter_bytes() if chunk]
    data = b"".join(chunks)
    assert len(chunks) > 1
    assert len(data) // 2 == produced_samples(server, mark)
    # the same request speaks each sentence in turn, so two segments were sent
    assert re.search(r"HTTP speech: \d+ chars, 2 segment", server.log)


def test_first_bytes_leave_before_the_last_sentence_is_spoken(server, http):
    """The answer begins before the request is finished: the first bytes are in the client's
    hands while the server has not yet logged the request as answered (it logs that line only
    after the last byte; the client does not read the rest until it has looked)."""
    mark = server.mark()
    text = " ".join(f"Sentence number {n} is here." for n in range(8))
    with http.stream("POST", "/v1/audio/speech",
                     json={"input": text, "voice": "ryan", "response_format": "pcm"}) as r:
        assert r.status_code == 200
        raw = r.iter_raw()
        first = next(raw)
        assert first
        answered = [line for line in server.lines[mark:] if "HTTP speech:" in line]
        assert not answered, "the whole answer was produced before the first bytes left"
        rest = b"".join(raw)
    assert (len(first) + len(rest)) // 2 == produced_samples(server, mark)


def mapped_files(pid: int) -> str:
    with open(f"/proc/{pid}/maps") as maps:
        return maps.read()


def test_speed_is_applied(server, client):
    # no earlier request asked for a speed: the time stretch's compiler (numba's llvmlite,
    # ~250 MB kept) is not loaded by a server that has only started and spoken
    assert "llvmlite" not in mapped_files(server.process.pid)
    mark = server.mark()
    fast = client.audio.speech.create(model="tts-1", voice="ryan", input="Hello there.",
                                      response_format="pcm", speed=2.0).content
    server.wait_for_log(r"Request audio", after=mark)
    spoken = sum(int(n) for n in re.findall(r"Segment: .*?, (\d+) samples,",
                                            "\n".join(server.lines[mark:])))
    assert spoken > 0
    assert abs(len(fast) // 2 - spoken / 2) <= 0.02 * spoken + 512, (len(fast) // 2, spoken)
    assert "llvmlite" in mapped_files(server.process.pid)  # the stretch did run, in there


def test_errors_have_openai_shape(server, client, http):
    cases = [
        ({"voice": "nobody"}, "unknown voice"),
        ({"response_format": "aac"}, "no AAC encoder"),
        ({"input": "   "}, "nothing to say"),
        ({"input": "x" * 3000}, "limit is 2000"),
        ({"speed": 5}, "speed"),
        ({"model": "whisper-9"}, "unknown model"),
        ({"response_format": "ogg"}, "response_format"),
        ({"stream_format": "sse"}, "sse"),
        ({"language": "klingon"}, "klingon"),
    ]
    for change, words in cases:
        body = {"model": "tts-1", "input": "Hello.", "voice": "ryan", **change}
        r = http.post("/v1/audio/speech", json=body)
        assert r.status_code == 400, (change, r.text)
        error = r.json()["error"]
        assert words in error["message"], (change, error)
        assert error["type"] == "invalid_request_error"
    with pytest.raises(openai.BadRequestError) as info:
        client.audio.speech.create(model="tts-1", voice="nobody", input="Hello.")
    body = info.value.body
    assert "unknown voice" in (body.get("message") or body["error"]["message"])
    r = http.post("/v1/audio/speech", content=b"{not json", headers={"content-type":
                                                                     "application/json"})
    assert r.status_code == 400 and "error" in r.json()
    r = http.get("/no/such/page")
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error"


def test_models_and_voices_are_listed(server, client, http):
    models = {m.id for m in client.models.list()}
    assert {"tts-1", "tts-1-hd", "gpt-4o-mini-tts", "qwen3-tts"} <= models
    assert {"tiny-custom_voice-v2", "tiny-voice_design-v2", "tiny-base-v2"} <= models
    voices = http.get("/v1/audio/voices").json()["voices"]
    ryan = next(v for v in voices if v["name"].lower() == "ryan")
    assert ryan["kind"] == "builtin" and ryan["model"] == "tiny-custom_voice-v2"
    assert "english" in ryan["languages"] and "en-US" in ryan["language_codes"]
    assert http.get("/v1/audio/models").json()["models"]
    info = http.get("/api/info").json()
    assert info["loaded"] and info["limits"]["max_text_chars"] == 2000
    assert "aac" not in info["formats"] and "opus" in info["formats"]
    # a configured checkpoint as `model` must serve the voice
    r = http.post("/v1/audio/speech", json={"model": "tiny-base-v2", "input": "Hi.",
                                            "voice": "ryan"})
    assert r.status_code == 400 and "served by" in r.json()["error"]["message"]
    r = http.post("/v1/audio/speech", json={"model": "tiny-custom_voice-v2", "input": "Hi.",
                                            "voice": "ryan", "response_format": "wav"})
    assert r.status_code == 200 and r.content[:4] == b"RIFF"


def test_page_is_served_with_relative_urls(http):
    r = http.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    assert "MediaRecorder" in page and "MediaSource" in page
    for url in re.findall(r"""(?:fetch|api|href=|src=)\(?["'`]([^"'`$]+)""", page):
        assert not url.startswith("/"), f"absolute URL {url!r} breaks under ingress"
    assert http.get("/openapi.json").json()["paths"]["/v1/audio/speech"]


# -- voice management -------------------------------------------------------------------------
def wav_bytes(seconds=2.5, rate=22050, subtype="PCM_16", channels=1, tmp=None) -> bytes:
    buffer = io.BytesIO()
    t = np.arange(int(seconds * rate)) / rate
    tone = 0.3 * np.sin(2 * np.pi * 180 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    samples = np.stack([tone] * channels, axis=1)
    soundfile.write(buffer, samples, rate, subtype=subtype, format="WAV")
    return buffer.getvalue()


def test_voice_management_is_live_for_wyoming(server, http, tmp_path):
    assert "grandma" not in describe(server)
    # a cloned voice from a FLAC upload whose name says .txt: recognised by its content
    write_clip(tmp_path / "clip.flac", 2.5, 44100, channels=2)
    r = http.post("/api/voices/clone", data={"name": "grandma", "transcript": "Hello there."},
                  files={"file": ("notes.txt", (tmp_path / "clip.flac").read_bytes(),
                                  "text/plain")})
    assert r.status_code == 201, r.text
    assert r.json()["kind"] == "cloned" and r.json()["model"] == "tiny-base-v2"
    folder = server_voices_dir(server) / "grandma"
    assert sorted(p.name for p in folder.iterdir()) == ["reference.txt", "reference.wav"]
    assert soundfile.info(str(folder / "reference.wav")).samplerate == 44100

    r = http.post("/api/voices/design", json={"name": "narrator",
                                              "description": "A calm, deep voice."})
    assert r.status_code == 201, r.text
    r = http.post("/api/voices/style", json={"name": "calm_ryan", "speaker": "RYAN",
                                             "instructions": "Speak calmly."})
    assert r.status_code == 201, r.text
    assert (server_voices_dir(server) / "calm_ryan" / "speaker.txt").read_text() == "ryan"
    # every change is in `describe` at once, and speaks over Wyoming
    assert {"grandma", "narrator", "calm_ryan"} <= describe(server)
    for name in ("grandma", "narrator", "calm_ryan"):
        assert asyncio.run(synthesize(server.port, "Hello there.", voice=name))
    listed = {v["name"]: v for v in http.get("/api/voices").json()["voices"]}
    assert listed["grandma"]["editable"] and listed["grandma"]["transcript"] == "Hello there."
    assert not listed["ryan"]["editable"]
    # preview and the recording itself
    r = http.get("/api/voices/narrator/preview", params={"response_format": "wav"})
    assert r.status_code == 200 and decode(r.content, "wav")[1] == 24000
    r = http.get("/api/voices/grandma/reference")
    assert r.status_code == 200 and r.content[:4] == b"RIFF"
    # instructions: added to a designed voice, ignored (and said so) for a cloned one
    r = http.post("/v1/audio/speech", json={"input": "Hi.", "voice": "narrator",
                                            "instructions": "Whisper."})
    assert r.status_code == 200 and "x-instructions-ignored" not in r.headers
    r = http.post("/v1/audio/speech", json={"input": "Hi.", "voice": "grandma",
                                            "instructions": "Whisper."})
    assert r.status_code == 200 and "cloned" in r.headers["x-instructions-ignored"]

    # rename, then delete: gone from describe at once
    r = http.patch("/api/voices/narrator", json={"name": "storyteller"})
    assert r.status_code == 200 and r.json()["name"] == "storyteller"
    names = describe(server)
    assert "storyteller" in names and "narrator" not in names
    for name in ("grandma", "storyteller", "calm_ryan"):
        r = http.delete(f"/api/voices/{name}")
        assert r.status_code == 200 and r.json() == {"deleted": name}
    assert not {"grandma", "storyteller", "calm_ryan"} & describe(server)
    assert not [p for p in server_voices_dir(server).iterdir()], "nothing left behind"


def server_voices_dir(server):
    from pathlib import Path

    return Path(server.command[server.command.index("--voices-dir") + 1])


def test_bad_uploads_and_names_are_refused(server, http):
    def clone(name="bad", data=None, **fields):
        return http.post("/api/voices/clone", data={"name": name, **fields},
                         files={"file": ("x.wav", wav_bytes() if data is None else data)})

    nan = io.BytesIO()
    samples = np.full(24000 * 2, 0.1, dtype=np.float32)
    samples[100] = np.nan
    soundfile.write(nan, samples, 24000, subtype="FLOAT", format="WAV")
    for response, status, words in [
        (clone(data=b"MZ\x90\x00" + bytes(5000)), 415, "not a recording"),
        (clone(data=b""), 400, "empty"),
        (clone(data=wav_bytes(seconds=0.4)), 400, "at least 1 s"),
        (clone(data=wav_bytes(seconds=70, rate=8000)), 400, "at most 60 s"),
        (clone(data=nan.getvalue()), 400, "invalid samples"),
        (clone(data=bytes(11 * 1024 * 1024)), 413, "larger than"),
        (clone(name="../etc"), 400, "name"),
        (clone(name="a/b"), 400, "name"),
        (clone(name="ryan"), 409, "taken"),
        (clone(model="Qwen/none"), 400, "unknown model"),
        (clone(model="tiny-custom_voice-v2"), 400, "Base checkpoint"),
        (http.post("/api/voices/design", json={"name": "x", "description": " \x00 "}), 400,
         "empty"),
        (http.post("/api/voices/style", json={"name": "x", "speaker": "nobody"}), 400,
         "not a speaker"),
        (http.delete("/api/voices/ryan"), 403, "built-in"),
        (http.delete("/api/voices/nobody"), 404, "unknown voice"),
        (http.delete("/api/voices/..%2F..%2Fetc"), 404, ""),
        (http.patch("/api/voices/ryan", json={"name": "x"}), 403, "built-in"),
        (http.post("/api/voices/design", content=b"x" * 300_000,
                   headers={"content-type": "application/json"}), 413, "larger than"),
    ]:
        assert response.status_code == status, response.text
        assert words in response.json()["error"]["message"], response.text
    assert not [p for p in server_voices_dir(server).iterdir()], "nothing written"
    r = http.post("/api/voices/design", json={"name": "twice", "description": "A voice."})
    assert r.status_code == 201
    r = http.post("/api/voices/design", json={"name": "TWICE", "description": "A voice."})
    assert r.status_code == 409
    assert http.delete("/api/voices/twice").status_code == 200


def test_folders_changed_by_hand_are_picked_up(server, tmp_path):
    voices = server_voices_dir(server)
    staging = tmp_path / "by_hand"
    staging.mkdir()
    (staging / "instruct.txt").write_text("A bright, cheerful voice.")
    shutil.move(str(staging), str(voices / "by_hand"))
    deadline = time.monotonic() + 60
    while "by_hand" not in describe(server):
        assert time.monotonic() < deadline, "a folder added by hand was not picked up"
        time.sleep(0.3)
    shutil.rmtree(voices / "by_hand")
    while "by_hand" in describe(server):
        assert time.monotonic() < deadline, "a folder removed by hand stayed"
        time.sleep(0.3)


def test_http_and_wyoming_share_the_queue(start_fresh, tiny_custom_voice, tmp_path):
    """--max-queue counts HTTP and Wyoming requests together: with one place taken by a
    streamed HTTP answer the client does not read, a Wyoming request is refused."""
    server = http_server(start_fresh, "--model", str(tiny_custom_voice),
                         extra=("--max-queue", "1", "--data-dir", str(tmp_path)))
    text = " ".join(f"Sentence number {n} is here." for n in range(8))
    with httpx.Client(base_url=server.http, timeout=120) as http:
        with http.stream("POST", "/v1/audio/speech", json={"input": text, "voice": "ryan",
                                                           "response_format": "pcm"}) as r:
            assert r.status_code == 200
            events = asyncio.run(request_events(server.port, Synthesize(text="Hello.").event()))
            assert events[0].type == "error" and events[0].data["code"] == "queue-full"
            second = http.post("/v1/audio/speech", json={"input": "Hi.", "voice": "ryan"})
            assert second.status_code == 429
            assert second.json()["error"]["type"] == "rate_limit_error"
            assert b"".join(r.iter_raw())
        # the place is given back once the answer is done
        server.wait_for_log(r"HTTP speech: ")
        assert asyncio.run(synthesize(server.port, "Hello."))


# -- access -----------------------------------------------------------------------------------
def test_api_key_and_trusted_proxy(start_fresh, tiny_custom_voice, tmp_path):
    server = http_server(start_fresh, "--model", str(tiny_custom_voice),
                         extra=("--http-api-key", "s3cret", "--http-trusted-proxy",
                                "127.0.0.2", "--data-dir", str(tmp_path)))
    for path in ("/", "/v1/models", "/api/voices", "/openapi.json"):
        r = httpx.get(server.http + path)
        assert r.status_code == 401, path
        assert r.json()["error"]["code"] == "invalid_api_key"
        assert r.headers["www-authenticate"].startswith("Basic")
        assert httpx.get(server.http + path, headers={"Authorization": "Bearer nope"}
                         ).status_code == 401
        assert httpx.get(server.http + path, headers={"Authorization": "Bearer s3cret"}
                         ).status_code == 200
        assert httpx.get(server.http + path, auth=("anyone", "s3cret")).status_code == 200
    client = openai.OpenAI(base_url=server.http + "/v1", api_key="s3cret", max_retries=0)
    assert client.audio.speech.create(model="tts-1", voice="ryan", input="Hi.").content
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=server.http + "/v1", api_key="wrong",
                      max_retries=0).models.list()
    # Home Assistant's ingress proxy (here: 127.0.0.2) needs no key
    proxy = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2"))
    assert proxy.get(server.http + "/api/voices").status_code == 200


def test_trusted_proxy_without_key_refuses_others(start_fresh, tiny_custom_voice, tmp_path):
    server = http_server(start_fresh, "--model", str(tiny_custom_voice),
                         extra=("--http-trusted-proxy", "127.0.0.2", "--data-dir",
                                str(tmp_path)))
    r = httpx.get(server.http + "/api/voices")
    assert r.status_code == 403 and "ingress" in r.json()["error"]["message"]
    proxy = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2"))
    assert proxy.get(server.http + "/").status_code == 200


# -- robustness ---------------------------------------------------------------------------------
def test_a_client_that_stops_reading_is_dropped(start_fresh, tiny_custom_voice, tmp_path):
    """An HTTP client that stops reading holds at most --max-unread-audio of audio: its request
    is cancelled and its queue place given back, so the others are served."""
    import socket

    server = http_server(start_fresh, "--model", str(tiny_custom_voice),
                         extra=("--max-queue", "1", "--max-unread-audio", "1",
                                "--data-dir", str(tmp_path)))
    host, port = server.http.removeprefix("http://").split(":")
    text = " ".join(f"Sentence number {n} is here and it goes on." for n in range(30))
    body = json.dumps({"input": text, "voice": "ryan", "response_format": "pcm"}).encode()
    sock = socket.create_connection((host, int(port)))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(b"POST /v1/audio/speech HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                 b"\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    try:  # never read: the server must give up on this client by itself
        server.wait_for_log(r"Dropping an HTTP client")
        deadline = time.monotonic() + 120
        while True:  # the place is given back: another request is served
            r = httpx.post(server.http + "/v1/audio/speech", timeout=120,
                           json={"input": "Hi.", "voice": "ryan", "response_format": "pcm"})
            if r.status_code == 200:
                break
            assert r.status_code == 429 and time.monotonic() < deadline, r.text
            time.sleep(0.5)
    finally:
        sock.close()


def test_sigterm_during_a_streamed_answer_exits_cleanly(start_fresh, tiny_custom_voice,
                                                        tmp_path):
    server = http_server(start_fresh, "--model", str(tiny_custom_voice),
                         extra=("--data-dir", str(tmp_path)))
    text = " ".join(f"Sentence number {n} is here." for n in range(20))
    with httpx.Client(timeout=120) as http, http.stream(
            "POST", server.http + "/v1/audio/speech",
            json={"input": text, "voice": "ryan", "response_format": "mp3"}) as r:
        assert next(r.iter_raw())
        assert server.stop() == 0
    assert "Traceback" not in server.log, server.log[-4000:]
