"""Voices through the real server: built-in, styled built-in, designed and cloned voices from a
voices folder, served by tiny custom_voice, voice_design and base checkpoints at once; broken
folders; the clone prompt cache across restarts; model eviction."""

from __future__ import annotations

import re
import shutil

import pytest
from test_cloning import write_clip
from test_server import peak
from wyoming.event import Event
from wyoming.tts import Synthesize, SynthesizeVoice

from wyoming_qwen3_tts.dev.serverproc import (
    check_audio,
    describe,
    request_events,
    servers,
)
from wyoming_qwen3_tts.server.languages import LANGUAGES, codes_for

LANGUAGE_CODES = codes_for(list(LANGUAGES))
TRANSCRIPT = "This is my voice, recorded for a test."
GOOD = {"narrator": "designed", "calm_ryan": "builtin", "grandma": "cloned",
        "robot": "cloned"}
BROKEN = {
    "empty_instruct": "instruct.txt is empty",
    "unreadable": "cannot read reference.wav",
    "too_short": "at least 1 s",
    "nothing_here": "no reference.wav",
    "ryan": "is taken by the builtin voice",
    "wrong_kind": "needs a VoiceDesign checkpoint",
    "no_such_speaker": "not a speaker of",
    "bad name!": "only letters, digits",
}


def make_voices(root, custom_model) -> None:
    """Good and broken voice folders; the recordings are synthetic, at rates other than 24 kHz
    (and one in stereo FLAC) so they are resampled and mixed down."""
    folders = {name: root / name for name in [*GOOD, *BROKEN]}
    for folder in folders.values():
        folder.mkdir(parents=True)
    (folders["narrator"] / "instruct.txt").write_text("A calm, deep voice, slow and clear.\n")
    (folders["calm_ryan"] / "speaker.txt").write_text("ryan")
    (folders["calm_ryan"] / "instruct.txt").write_text("Speak very calmly.")
    write_clip(folders["grandma"] / "reference.wav", 2.5, 44100)
    (folders["grandma"] / "reference.txt").write_text(TRANSCRIPT)
    write_clip(folders["robot"] / "reference.flac", 2.0, 16000, f0=200.0, channels=2)
    (folders["empty_instruct"] / "instruct.txt").write_text("  \n")
    (folders["unreadable"] / "reference.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    write_clip(folders["too_short"] / "reference.wav", 0.4, 16000)
    (folders["ryan"] / "instruct.txt").write_text("A voice that is not Ryan.")
    (folders["wrong_kind"] / "instruct.txt").write_text("A voice for the wrong model.")
    (folders["wrong_kind"] / "model.txt").write_text(str(custom_model))
    (folders["no_such_speaker"] / "speaker.txt").write_text("Nobody")
    (folders["bad name!"] / "instruct.txt").write_text("A voice with a bad name.")


@pytest.fixture(scope="module")
def models(tiny_custom_voice, tiny_voice_design, tiny_base) -> list[str]:
    return ["--model", str(tiny_custom_voice), "--model", str(tiny_voice_design),
            "--model", str(tiny_base)]


@pytest.fixture(scope="module")
def voices_dir(tmp_path_factory, tiny_custom_voice):
    root = tmp_path_factory.mktemp("voices")
    make_voices(root, tiny_custom_voice)
    return root


@pytest.fixture(scope="module")
def server(models, voices_dir, tmp_path_factory):
    with servers() as start:
        srv = start(*models, "--voices-dir", str(voices_dir),
                    "--data-dir", str(tmp_path_factory.mktemp("data")),
                    "--no-warmup", "--debug", "--threads", "1")
        srv.wait_for_log(r"Ready: ")
        yield srv


async def speak(port: int, text: str, voice: str | None = None) -> list[Event]:
    """Every event answering one synthesize, up to audio-stop."""
    voices = SynthesizeVoice(name=voice) if voice else None
    return await request_events(port, Synthesize(text=text, voice=voices).event())


def count(server, pattern: str) -> int:
    return sum(1 for line in server.lines if re.search(pattern, line))


async def test_every_kind_of_voice_is_listed_with_its_languages(server, tiny_custom_voice):
    program = (await describe(server.port)).tts[0]
    voices = {v.name: v for v in program.voices}
    for name in ("Ryan", "Vivian", "Sohee", *GOOD):
        assert voices[name.lower() if name not in GOOD else name].installed
    for voice in voices.values():
        assert voice.languages == LANGUAGE_CODES and voice.description
    assert voices["narrator"].description.startswith("Designed: A calm, deep voice")
    assert "Ryan" in voices["calm_ryan"].description
    assert "with transcript" in voices["grandma"].description
    assert "recording alone" in voices["robot"].description
    # the built-in speakers come first, as the checkpoint lists them, then the folders
    assert len(voices) == 9 + len(GOOD)
    assert str(tiny_custom_voice) in program.description


async def test_broken_folders_are_reported_and_left_out(server):
    program = (await describe(server.port)).tts[0]
    names = {v.name for v in program.voices}
    for folder, reason in BROKEN.items():
        if folder != "ryan":
            assert folder not in names
        line = server.wait_for_log(rf"Voice folder .*/{re.escape(folder)} left out: (.*)")
        assert reason in line[1], line[0]


@pytest.mark.parametrize("voice", [None, "Vivian", "calm_ryan", "NARRATOR", "grandma",
                                   "robot"])
async def test_each_voice_is_spoken(server, voice):
    mark = server.mark()
    pcm = check_audio(await speak(server.port, "Hello there.", voice))
    assert peak(pcm) > 300
    shown = (voice or "ryan").lower() if voice != "Vivian" else "vivian"
    expected = {"calm_ryan": "calm_ryan", "narrator": "narrator"}.get(shown, shown)
    server.wait_for_log(rf"Synthesize: 12 chars, .*voice={expected},", after=mark)


@pytest.mark.parametrize("name", ["../../etc/passwd", "nobody", "unreadable", "bad name!",
                                  "/tmp", "grandma/reference.wav"])
async def test_unknown_or_path_like_voice_gets_a_clean_error(server, name):
    events = await speak(server.port, "Hi.", name)
    assert [e.type for e in events] == ["error", "audio-stop"]
    assert events[0].data["code"] == "unknown-voice"
    check_audio(await speak(server.port, "Ok.", "robot"))  # the server goes on


async def test_clone_prompt_is_cached_across_restarts(models, tmp_path, tiny_custom_voice):
    voices, data = tmp_path / "voices", tmp_path / "data"
    (voices / "grandma").mkdir(parents=True)
    write_clip(voices / "grandma" / "reference.wav", 2.0, 16000)
    (voices / "grandma" / "reference.txt").write_text(TRANSCRIPT)
    common = ("--voices-dir", str(voices), "--data-dir", str(data), "--no-warmup",
              "--threads", "1")
    computed = r"Computed clone prompt for voice grandma"
    cached = r"Loaded cached clone prompt for voice grandma"

    # first start: the base checkpoint is loaded for the first request, the prompt computed
    with servers() as start:
        srv = start(*models, *common)
        srv.wait_for_log(r"Ready: ")
        check_audio(await speak(srv.port, "Hello.", "grandma"))
        assert count(srv, computed) == 1 and count(srv, cached) == 0
        check_audio(await speak(srv.port, "Again.", "grandma"))
        assert count(srv, computed) == 1  # in memory since
    assert len(list((data / "voice_cache").glob("*.pt"))) == 1

    # second start, one model loaded at a time: the cache is reused; models take turns
    with servers() as start:
        srv = start("--model", str(tiny_custom_voice), *models[2:], *common,
                    "--max-loaded-models", "1")
        srv.wait_for_log(r"Ready: ")
        check_audio(await speak(srv.port, "Hello.", "grandma"))
        assert count(srv, computed) == 0 and count(srv, cached) == 1
        srv.wait_for_log(rf"Evicted model {re.escape(str(tiny_custom_voice))}: at most 1")
        check_audio(await speak(srv.port, "Hello.", "Ryan"))
        srv.wait_for_log(r"Evicted model .*tiny-base")

    # an edited recording is prepared again (the base checkpoint first: at start, then it
    # warms up with that voice)
    write_clip(voices / "grandma" / "reference.wav", 2.0, 16000, f0=220.0)
    with servers() as start:
        srv = start(*models[4:], *[arg for arg in common if arg != "--no-warmup"])
        srv.wait_for_log(r"Ready: ")
        assert count(srv, computed) == 1 and count(srv, cached) == 0
        assert count(srv, r"Warm-up done in .* \(voice grandma\)") == 1
        check_audio(await speak(srv.port, "Hello."))  # the base model's only voice: default
        srv.wait_for_log(r"Synthesize: .*voice=grandma")


async def test_folder_voices_without_their_kind_of_checkpoint(tiny_custom_voice, tmp_path,
                                                              voices_dir):
    voices = tmp_path / "voices"
    shutil.copytree(voices_dir, voices)
    with servers() as start:
        srv = start("--model", str(tiny_custom_voice), "--voices-dir", str(voices),
                    "--data-dir", str(tmp_path / "data"), "--no-warmup", "--threads", "1",
                    "--voice", "calm_ryan")
        srv.wait_for_log(r"Ready: .*default calm_ryan")
        names = {v.name for v in (await describe(srv.port)).tts[0].voices}
        assert "calm_ryan" in names and not names & {"narrator", "grandma", "robot"}
        assert re.search(r"narrator left out: a designed voice needs a VoiceDesign checkpoint; "
                         r"none is configured", srv.log)
        assert re.search(r"grandma left out: a cloned voice needs a Base checkpoint", srv.log)
        check_audio(await speak(srv.port, "Hello."))
        srv.wait_for_log(r"Synthesize: .*voice=calm_ryan")
