"""A bad voice file or cache file costs that voice only, never the server: the real server
(subprocess) with the tiny Base checkpoint first, its warm-up on (the default)."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import soundfile
import torch
from test_cloning import TRANSCRIPT, write_clip

from wyoming_qwen3_tts.dev.serverproc import describe, servers, synthesize

pytestmark = pytest.mark.timeout(600)


def voice_names(info) -> list[str]:
    return [voice.name for voice in info.tts[0].voices]


def good_voice(root, name: str = "zz_good") -> None:
    (root / name).mkdir(parents=True)
    write_clip(root / name / "reference.wav", 2.0, 16000)
    (root / name / "reference.txt").write_text(TRANSCRIPT)


def nan_voice(root, name: str = "aaa_nan") -> None:
    """A float WAV with one NaN sample: its header is fine, its samples are not (and it sorts
    first, so the warm-up and the default voice would pick it)."""
    (root / name).mkdir(parents=True)
    clip = np.sin(np.arange(32000) / 10).astype(np.float32) * 0.3
    clip[1000] = np.nan
    soundfile.write(str(root / name / "reference.wav"), clip, 16000, subtype="FLOAT")


def start_base(start, tiny_base, voices, data, *extra, **kwargs):
    return start("--model", str(tiny_base), "--voices-dir", str(voices), "--data-dir",
                 str(data), "--threads", "1", "--debug", *extra, **kwargs)


@pytest.mark.parametrize("warmup", [True, False])
async def test_a_recording_with_invalid_samples_costs_that_voice_only(tiny_base, tmp_path,
                                                                      warmup):
    voices, data = tmp_path / "voices", tmp_path / "data"
    nan_voice(voices)
    good_voice(voices)
    with servers() as start:
        server = start_base(start, tiny_base, voices, data,
                            *([] if warmup else ["--no-warmup"]))
        ready = server.wait_for_log(r"Ready: .*default (\S+),")
        assert ready[1] == "zz_good"  # not the broken one
        server.wait_for_log(r"Voice aaa_nan left out: .*invalid samples")
        assert voice_names(await describe(server.port)) == ["zz_good"]
        await synthesize(server.port, "Hello.")  # no voice named: the default works
        await synthesize(server.port, "Hello.", voice="zz_good")
        assert server.alive()


@pytest.mark.parametrize("damage", ["flipped bytes", "wrong shape", "wrong type"])
async def test_a_damaged_clone_cache_is_computed_again(tiny_base, tmp_path, damage):
    voices, data = tmp_path / "voices", tmp_path / "data"
    good_voice(voices)
    computed = "Computed clone prompt for voice zz_good"
    with servers() as start:
        server = start_base(start, tiny_base, voices, data)
        server.wait_for_log(computed)
        server.wait_for_log(r"Ready: ")
    (cache,) = (data / "voice_cache").glob("*.pt")
    if damage == "flipped bytes":  # still unpickles: only the checksum tells
        raw = bytearray(cache.read_bytes())
        middle = len(raw) // 2
        raw[middle:middle + 64] = bytes(b ^ 0x5A for b in raw[middle:middle + 64])
        cache.write_bytes(bytes(raw))
    else:
        content = torch.load(cache, weights_only=True)
        if damage == "wrong shape":
            content["speaker_embedding"] = torch.zeros(7)
        else:
            content["ref_codes"] = "not codes"
        torch.save(content, cache)
    for _ in range(2):  # recomputed, and the next start finds a good cache again
        with servers() as start:
            server = start_base(start, tiny_base, voices, data)
            server.wait_for_log(r"Ready: ")
            await synthesize(server.port, "Hello.", voice="zz_good")
            log = server.log
        if "Ignoring damaged clone cache" in log:
            assert computed in log
        else:
            assert "Loaded cached clone prompt for voice zz_good" in log


@pytest.fixture
def nearly_full_folder(tmp_path):
    """A folder on a file system of its own with a few KB free (a small tmpfs, mounted for
    the test: the suite runs as root)."""
    folder = tmp_path / "full"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    try:
        (folder / "filler").write_bytes(b"x" * (60 * 1024))  # ~4 KB left
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


async def test_a_cache_that_cannot_be_written_is_not_fatal(tiny_base, tmp_path,
                                                           nearly_full_folder):
    # the data folder is nearly full: torch.save fails half-way (RuntimeError, not OSError)
    voices, data = tmp_path / "voices", nearly_full_folder
    good_voice(voices)
    with servers() as start:
        server = start_base(start, tiny_base, voices, data)
        server.wait_for_log(r"Could not cache the clone prompt .*kept in memory")
        server.wait_for_log(r"Ready: ")
        await synthesize(server.port, "Hello.", voice="zz_good")
    assert list((data / "voice_cache").glob("*.pt")) == []
    assert list((data / "voice_cache").glob(".clone-*")) == []  # no half-written file


async def test_a_huge_recording_is_read_only_as_far_as_it_is_used(tiny_base, tmp_path):
    # 30 minutes of 48 kHz stereo float: 1.4 GB decoded; only the first 10 s are used
    voices, data = tmp_path / "voices", tmp_path / "data"
    (voices / "long").mkdir(parents=True)
    rate, seconds = 48000, 30 * 60
    with soundfile.SoundFile(str(voices / "long" / "reference.wav"), "w", rate, 2,
                             subtype="PCM_16") as sound:
        block = (np.sin(np.arange(rate * 10) / 7)[:, None] * [0.3, 0.2]).astype(np.float32)
        for _ in range(seconds // 10):
            sound.write(block)
    with servers() as start:
        server = start_base(start, tiny_base, voices, data)
        server.wait_for_log(r"Ready: ")
        server.wait_for_log(r"Computed clone prompt for voice long \(10\.0 s reference")
        await synthesize(server.port, "Hello.", voice="long")
        # the tiny model serves in well under 1 GB; decoding the whole file took 1.8 GB
        assert server.peak_rss() < 1.0e9, server.peak_rss()
