"""The voice catalog and the model pool, without models (fast)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from wyoming_qwen3_tts.server.catalog import Catalog, CheckpointSummary, peek_checkpoint
from wyoming_qwen3_tts.server.languages import codes_for
from wyoming_qwen3_tts.server.pool import ModelPool
from wyoming_qwen3_tts.server.voice_folders import BUILTIN, CLONED, DESIGNED, scan_voices_dir

LANGS = ["english", "german"]


def custom(size="1b7", speakers=("Ryan", "Vivian")):
    return CheckpointSummary("custom_voice", list(speakers), LANGS, size=size)


def folder(root: Path, name: str, **files: str) -> Path:
    path = root / name
    path.mkdir(parents=True)
    for filename, text in files.items():
        (path / filename.replace("_txt", ".txt")).write_text(text)
    return path


def test_published_repos_are_known_before_download(tmp_path):
    for repo, kind in [("Qwen/Qwen3-TTS-12Hz-1.7B-VoiceDesign", "voice_design"),
                       ("Qwen/Qwen3-TTS-12Hz-0.6B-Base", "base"),
                       ("Qwen/Qwen3-TTS-12Hz-0.6B-CustomVoice", "custom_voice")]:
        summary = peek_checkpoint(repo, tmp_path)
        assert summary.model_type == kind and len(summary.languages) == 10
        assert bool(summary.speakers) == (kind == "custom_voice")
    assert peek_checkpoint("someone/unknown-tts", tmp_path) is None


def test_voices_of_several_checkpoints(tmp_path, caplog):
    folder(tmp_path, "narrator", instruct_txt="A deep voice.")
    folder(tmp_path, "calm", speaker_txt="ryan", instruct_txt="Calmly.")
    folder(tmp_path, "small_calm", speaker_txt="vivian", instruct_txt="Calmly.",
           model_txt="b/small")
    folder(tmp_path, "unknown_model", instruct_txt="A voice.", model_txt="x/nowhere")
    catalog = Catalog(["a/big", "b/small", "c/design", "d/later"], streaming=True,
                      folders=scan_voices_dir(tmp_path))
    assert catalog.voices == [] and not catalog.known
    catalog.set_checkpoint("a/big", custom("1b7", ["Ryan", "Vivian"]))
    catalog.set_checkpoint("b/small", custom("0b6", ["Vivian", "Sohee"]))
    # the designed voice waits: d/later, not known yet, might be a VoiceDesign checkpoint
    assert catalog.voice("narrator") is None
    catalog.set_checkpoint("c/design", CheckpointSummary("voice_design", [], LANGS))
    names = [(v.name, v.kind, v.model) for v in catalog.voices]
    assert names == [("Ryan", BUILTIN, "a/big"), ("Vivian", BUILTIN, "a/big"),
                     ("Sohee", BUILTIN, "b/small"), ("calm", BUILTIN, "a/big"),
                     ("narrator", DESIGNED, "c/design"), ("small_calm", BUILTIN, "b/small")]
    assert catalog.voice("CALM").instruct == "Calmly." and catalog.voice("calm").speaker == "Ryan"
    assert "0.6B CustomVoice checkpoint, which ignores style" in caplog.text
    assert "small_calm" in caplog.text and "model.txt names 'x/nowhere'" in caplog.text
    assert catalog.voice("uncle fu") is None and catalog.voice("sohee").name == "Sohee"
    assert catalog.default_voice(None).name == "Ryan"
    assert catalog.default_voice("narrator").kind == DESIGNED
    assert catalog.default_voice("nobody") is None
    for name in ("../../etc/passwd", "/tmp", "", None, "narrator/instruct.txt"):
        assert catalog.voice(name) is None
    assert not catalog.loaded and "loading" in catalog.info().tts[0].description
    catalog.set_checkpoint("a/big", None, loaded=True)
    catalog.set_checkpoint("d/later", CheckpointSummary("base", [], LANGS))
    assert catalog.loaded and catalog.known
    info = catalog.info().tts[0]
    assert "loading" not in info.description
    codes = info.voices[0].languages
    assert codes == codes_for(["english", "german"]) and {"en-US", "en-GB", "de-DE"} <= set(codes)


def test_errors_are_reported_once(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    folder(tmp_path, "designed", instruct_txt="A voice.")
    catalog = Catalog(["a/custom"], streaming=True, folders=scan_voices_dir(tmp_path))
    for _ in range(3):
        catalog.set_checkpoint("a/custom", custom())
    assert caplog.text.count("needs a VoiceDesign checkpoint; none is configured") == 1


class FakeEngine:
    def __init__(self, model):
        self.model = model


def test_pool_keeps_at_most_max_loaded(caplog):
    caplog.set_level(logging.INFO)
    loaded = []
    pool = ModelPool(lambda m: Path("/x") / m, lambda m, f: loaded.append(m) or FakeEngine(m),
                     max_loaded=2)
    for model in ["a", "b", "a", "c", "a", "b"]:
        assert pool.get(model).model == model
    assert loaded == ["a", "b", "c", "b"] and pool.loaded == ["a", "b"]
    assert "Evicted model b: at most 2" in caplog.text
    assert "Evicted model c: at most 2" in caplog.text


def test_pool_evicts_by_available_memory(caplog):
    caplog.set_level(logging.INFO)
    gib = 1024**3
    sizes = {"big": 4 * gib, "small": 1 * gib}
    others = [0]  # memory taken by other programs

    def available() -> int:  # 6 GB, less the loaded models and the others
        return 6 * gib - others[0] - sum(sizes[m] for m in pool.loaded)

    pool = ModelPool(lambda m: Path(m), lambda m, _f: FakeEngine(m), 0,
                     estimate=lambda f: sizes[f.name], available=available)
    pool.get("big")  # 6 GB free: fits
    pool.get("small")  # 2 GB free: 1 GB + margin fits
    assert pool.loaded == ["big", "small"]
    pool.evict()  # unload "big" by hand, then need it again...
    others[0] = 3 * gib  # ...while something else took memory: 2 GB free
    pool.get("big")  # 2 GB free < 4.5 GB: "small" goes, then it is loaded anyway, with a warning
    assert pool.loaded == ["big"]
    assert "Evicted model small: big needs about 4.5 GB, 2.0 GB available" in caplog.text
    assert "Loading big, which needs about 4.5 GB, with 3.0 GB available" in caplog.text


@pytest.mark.parametrize("files, reason", [
    ({"instruct_txt": "   "}, "instruct.txt is empty"),
    ({"speaker_txt": ""}, "speaker.txt is empty"),
    ({"reference_txt": "words"}, "reference.txt without a reference recording"),
    ({"notes_txt": "hello"}, "no reference.wav"),
    ({"instruct_txt": "x" * 3000}, "at most 2000"),
])
def test_bad_folders(tmp_path, caplog, files, reason):
    folder(tmp_path, "voice", **files)
    assert scan_voices_dir(tmp_path) == []
    assert reason in caplog.text


def test_non_utf8_and_odd_entries(tmp_path, caplog):
    (folder(tmp_path, "latin1") / "instruct.txt").write_bytes("Stimme für".encode("latin-1"))
    folder(tmp_path, ".hidden", instruct_txt="x")
    (tmp_path / "stray.txt").write_text("not a folder")
    assert scan_voices_dir(tmp_path) == []
    assert "instruct.txt is not UTF-8" in caplog.text and ".hidden" not in caplog.text
    assert scan_voices_dir(tmp_path / "missing") == []
    assert CLONED == "cloned"


def test_voice_files_are_cleaned_and_bounded(tmp_path, caplog):
    folder(tmp_path, "styled", instruct_txt="A calm\x1b[31m voice\u202e,\x00 slow.\n")
    (tmp_path / "huge").mkdir()
    (tmp_path / "huge" / "instruct.txt").write_bytes(b"x" * 10_000_000)  # never read whole
    (found,) = scan_voices_dir(tmp_path)
    assert found.instruct == "A calm[31m voice, slow."
    assert "huge" in caplog.text and "longer than 2000 characters" in caplog.text
