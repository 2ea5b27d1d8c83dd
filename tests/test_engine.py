"""The streaming engine on tiny checkpoints of the real architecture (built by devmodel)."""

from __future__ import annotations

import contextlib
import platform
import sys
import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from markers import needs_int8

from wyoming_qwen3_tts.engine import overlap
from wyoming_qwen3_tts.engine.decoding import Sampling
from wyoming_qwen3_tts.engine.engine import Engine, EngineInputError, EngineLoadError, StreamStats
from wyoming_qwen3_tts.engine.quantize import FLOAT_LINEAR, ProductLinear, product_of
from wyoming_qwen3_tts.engine.vocoder import StreamingVocoder

GREEDY = dict(do_sample=False, subtalker_dosample=False)
X86 = platform.machine().lower() in ("x86_64", "amd64")
TEXT = "Hello there, this is a small test."


def load(folder, tmp_path_factory, dtype="float32", **sampling) -> Engine:
    engine = Engine.load(str(folder), data_dir=tmp_path_factory.mktemp("data"), dtype=dtype)
    if sampling:
        engine.sampling = Sampling(**{**engine.sampling.__dict__, **sampling})
        engine.generator.sampling = engine.sampling
    return engine


@pytest.fixture(scope="module")
def custom(tiny_custom_voice, tmp_path_factory) -> Engine:
    return load(tiny_custom_voice, tmp_path_factory, **GREEDY)


@pytest.fixture(scope="module")
def design(tiny_voice_design, tmp_path_factory) -> Engine:
    return load(tiny_voice_design, tmp_path_factory, **GREEDY)


def pcm_samples(chunks) -> np.ndarray:
    return np.frombuffer(b"".join(chunks), dtype="<i2")


def library_codes(engine: Engine, text: str, frames: int, *, speaker=None, language="english",
                  instruct=None) -> torch.Tensor:
    """Codes from the library's own generate path, exactly as its generate_* wrappers call it."""
    tts = engine.tts
    input_ids = tts._tokenize_texts([tts._build_assistant_text(text)])
    instruct_ids = [tts._tokenize_texts([tts._build_instruct_text(instruct)])[0]
                    if instruct else None]
    kwargs = tts._merge_generate_kwargs(max_new_tokens=frames + 1, **GREEDY)
    # our float32 products run without oneDNN where that is cheaper (aarch64:
    # quantize.FLOAT_LINEAR): the library's then too, so that both sum alike
    with contextlib.nullcontext() if FLOAT_LINEAR is F.linear else \
            torch.backends.mkldnn.flags(enabled=False):
        codes, _ = tts.model.generate(
            input_ids=input_ids, instruct_ids=instruct_ids, languages=[language],
            speakers=[speaker], non_streaming_mode=True, **kwargs,
        )
    return codes[0]


def our_codes(engine: Engine, text: str, frames: int, **kwargs) -> torch.Tensor:
    _, gen = engine.frames(text, max_frames=frames, **kwargs)
    return torch.stack(list(gen))


def test_loads_from_folder(custom: Engine):
    assert custom.model_type == "custom_voice"
    assert "ryan" in [s.lower() for s in custom.speakers]
    assert {"english", "german", "chinese"} <= set(custom.languages)
    assert custom.sample_rate == 24000 and custom.samples_per_frame == 1920
    # sampling defaults come from the checkpoint's generation_config.json
    defaults = Sampling.from_generation_config(custom.tts.generate_defaults)
    assert defaults.do_sample is True and defaults.repetition_penalty == pytest.approx(1.05)


@pytest.mark.parametrize("language", ["english", "auto"])
def test_greedy_parity_custom_voice(custom: Engine, language):
    lib = library_codes(custom, TEXT, 24, speaker="Ryan", language=language)
    ours = our_codes(custom, TEXT, 24, speaker="Ryan", language=language)
    assert lib.shape == (24, 16)
    assert torch.equal(ours, lib)


def test_greedy_parity_voice_design(design: Engine):
    instruct = "A warm, low voice, speaking slowly."
    lib = library_codes(design, "Guten Tag, wie geht es?", 20, language="german",
                        instruct=instruct)
    ours = our_codes(design, "Guten Tag, wie geht es?", 20, language="german",
                     instruct=instruct)
    assert torch.equal(ours, lib)


@pytest.mark.parametrize("schedule", [(3, 6, 12), (1,), (5, 7, 11, 13)])
def test_streamed_pcm_matches_whole_decoding(custom: Engine, schedule):
    # 100 frames: longer than the decoder transformer's 72-frame window, so its carried keys
    # and values, the convolutions' history and the transposed convolutions' overlap all count
    codes = our_codes(custom, TEXT, 100, speaker="Ryan")
    with torch.inference_mode():
        whole = custom.decoder(codes.T.unsqueeze(0))[0, 0].float().numpy()
    vocoder = StreamingVocoder(custom.decoder, schedule=schedule)
    parts = [w for w in (vocoder.push(f) for f in codes) if w is not None]
    parts.append(vocoder.flush())
    streamed = np.concatenate([p for p in parts if p is not None])
    assert streamed.shape == whole.shape == (100 * 1920,)
    # The decoder state is carried exactly; what differs is float32 rounding of sums taken in
    # another order (overlap-add, attention over a chunk): measured 2e-6.  1e-4 is 3 steps of
    # 16-bit PCM: any real fault (a lost frame, a misplaced overlap, a wrong position) is
    # off by the signal's own size (RMS 0.2 here).
    np.testing.assert_allclose(streamed, whole, atol=1e-4)
    assert np.sqrt(np.mean(whole**2)) > 1e-2  # the tiny model really makes sound


def stored_dtype(folder, part: str) -> torch.dtype:
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
        name = next(n for n in f.keys() if part in n)
        return f.get_tensor(name).dtype


def _owns_its_memory(t: torch.Tensor) -> bool:
    return t.untyped_storage().nbytes() == t.numel() * t.element_size()


def test_memory_is_held_only_for_what_is_used(custom: Engine):
    # the vocoder's carried state: copies of the chunk tails, not views that keep each
    # convolution's whole input alive until the next chunk
    codes = our_codes(custom, TEXT, 20, speaker="Ryan")
    vocoder = StreamingVocoder(custom.decoder, schedule=(3, 6))
    for frame in codes:
        vocoder.push(frame)
    assert vocoder.state.conv_state
    assert all(_owns_its_memory(t) for t in vocoder.state.conv_state.values())
    # the talker's KV cache grows for a long utterance and goes back to its initial length
    stack = custom.generator.talker_stack
    initial = stack.initial_length
    try:
        stack.initial_length = 8
        stack.release()
        assert stack.cache.length == 8
        _, gen = custom.frames(TEXT, max_frames=30, speaker="Ryan")
        positions = []
        for _ in gen:
            positions.append(stack.cache.length)
        assert len(positions) == 30 and max(positions) >= 30
        assert stack.cache.length == 8
    finally:
        stack.initial_length = initial
    # and it still speaks like the library
    assert torch.equal(our_codes(custom, TEXT, 24, speaker="Ryan", language="english"),
                       library_codes(custom, TEXT, 24, speaker="Ryan", language="english"))


def test_first_chunk_after_few_frames(custom: Engine):
    stats = StreamStats()
    gen = custom.stream(TEXT, speaker="Ryan", stats=stats)
    first = next(gen)
    assert stats.frames == 3  # the first chunk left after three frames (240 ms of audio)
    assert len(first) == 3 * 1920 * 2
    rest = pcm_samples(gen)
    assert stats.frames > 3 and len(rest) == (stats.frames - 3) * 1920
    assert np.abs(rest).max() > 100


class WatchedCancel(threading.Event):
    """A cancel event that counts the decode loop's checks: each check that finds it clear
    starts a frame.  (Generation may run on a thread of its own, beside the vocoder.)"""

    def __init__(self) -> None:
        super().__init__()
        self.frames_begun = 0
        self.begun_at_set: int | None = None

    def is_set(self) -> bool:
        value = super().is_set()
        if not value and sys._getframe(1).f_code.co_name == "frames":  # the decode loop's
            self.frames_begun += 1
        return value

    def set(self) -> None:
        self.begun_at_set = self.frames_begun
        super().set()


@pytest.fixture(params=["sequential", "overlapped"])
def overlapping(request, custom: Engine, monkeypatch):
    """The engine as it runs by default, and with generation beside the vocoder (overlap.py):
    two threads whatever the machine's load, and a record of the threads frames came from."""
    if request.param == "overlapped":
        monkeypatch.setenv(overlap.ENV, "1")
        monkeypatch.setattr(custom.governor, "adapt", False)
        monkeypatch.setattr(custom.governor, "current", 2)
    threads: set[str] = set()
    made = custom.generator._other_codes

    def recorded(*args):
        threads.add(threading.current_thread().name)
        return made(*args)

    monkeypatch.setattr(custom.generator, "_other_codes", recorded)
    yield request.param, threads
    assert (threads == {"generation"}) == (request.param == "overlapped"), threads


def test_cancel_stops_within_a_frame(custom: Engine, overlapping):
    cancel = WatchedCancel()
    stats = StreamStats()
    gen = custom.stream(TEXT, speaker="Ryan", cancel=cancel, stats=stats)
    next(gen)
    assert stats.frames == 3  # generation waited for the first chunk to be handed over
    cancel.set()
    assert list(gen) == []  # nothing after the cancel: frames made meanwhile are dropped
    assert cancel.begun_at_set is not None
    assert cancel.frames_begun == cancel.begun_at_set  # no frame started after the cancel
    assert stats.frames <= cancel.begun_at_set  # the one in flight at most, then stopped
    assert stats.frame_cap > stats.frames
    assert not [t for t in threading.enumerate() if t.name == "generation"]


def test_generation_beside_the_vocoder(custom: Engine, monkeypatch):
    # the same PCM with generation on its own thread as all in one thread
    alone = b"".join(custom.stream(TEXT, speaker="Ryan", max_frames=30, seed=3))
    monkeypatch.setenv(overlap.ENV, "1")
    monkeypatch.setattr(custom.governor, "adapt", False)
    monkeypatch.setattr(custom.governor, "current", 2)  # two threads, even if loaded
    threads: set[str] = set()
    made = custom.generator._other_codes

    def recorded(*args):
        threads.add(threading.current_thread().name)
        if "FAIL" in threads:
            raise RuntimeError("generation failed here")
        return made(*args)

    monkeypatch.setattr(custom.generator, "_other_codes", recorded)
    spoken = b"".join(custom.stream(TEXT, speaker="Ryan", max_frames=30, seed=3))
    assert threads == {"generation"}
    np.testing.assert_allclose(pcm_samples([spoken]), pcm_samples([alone]), atol=4)
    # closing the stream early stops the generating thread and waits for it
    gen = custom.stream(TEXT, speaker="Ryan", max_frames=30)
    next(gen)
    next(gen)
    gen.close()
    assert not [t for t in threading.enumerate() if t.name == "generation"]
    # an error while generating comes out of the stream, in the caller's thread
    threads.add("FAIL")
    with pytest.raises(RuntimeError, match="generation failed here"):
        list(custom.stream(TEXT, speaker="Ryan", max_frames=30))
    assert not [t for t in threading.enumerate() if t.name == "generation"]


def test_frame_cap(custom: Engine, caplog):
    # random weights never say EOS: the cap, proportional to the text, ends the segment
    stats = StreamStats()
    samples = pcm_samples(custom.stream("Hi.", speaker="Ryan", stats=stats))
    assert stats.hit_frame_cap and stats.frames == stats.frame_cap == custom.frame_cap("Hi.")
    assert len(samples) == stats.frames * 1920
    assert "Frame cap hit" in caplog.text
    assert custom.frame_cap("A much longer sentence than that one.") > stats.frame_cap


def test_stops_at_eos(tiny_custom_voice, tmp_path_factory):
    engine = load(tiny_custom_voice, tmp_path_factory, **GREEDY)
    eos = engine.model.config.talker_config.codec_eos_token_id
    head = engine.model.talker.codec_head
    biased = torch.nn.Linear(head.in_features, head.out_features, bias=True)
    with torch.no_grad():  # the same head, plus a bias that makes EOS win whenever allowed
        biased.weight.copy_(head.weight)
        biased.bias.zero_()
        biased.bias[eos] = 1e4
    engine.model.talker.codec_head = biased
    engine.generator._codec_head = product_of(biased)  # the decode loop calls it as a product
    stats = StreamStats()
    samples = pcm_samples(engine.stream(TEXT, speaker="Ryan", stats=stats))
    # EOS is suppressed for the first two frames, exactly as in the library
    assert not stats.hit_frame_cap and stats.frames == 2
    assert len(samples) == 2 * 1920


@pytest.mark.parametrize("dtype", ["float32", "bfloat16",
                                   pytest.param("int8", marks=needs_int8), "int8-weight-only",
                                   "int4", "int4-all", "auto"])
def test_each_dtype_loads_and_speaks(tiny_custom_voice, tmp_path_factory, dtype):
    engine = load(tiny_custom_voice, tmp_path_factory, dtype=dtype)
    if dtype != "auto":
        assert engine.precision.generation == dtype
    if engine.precision.talker == "int8-fbgemm":
        assert isinstance(engine.model.talker.codec_head, torch.ao.nn.quantized.dynamic.Linear)
    elif dtype.startswith("int"):  # the rest of the talker in int8 too
        assert isinstance(engine.model.talker.codec_head, ProductLinear)
    if dtype.startswith("int") or dtype == "auto":
        # embedding tables in the checkpoint's own dtype (bfloat16 here), in memory of their
        # own: no view left on the memory-mapped checkpoint file
        # (the published checkpoints store bfloat16, the tiny one float32)
        tables = [engine.model.talker.get_input_embeddings(),
                  *engine.model.talker.code_predictor.get_input_embeddings()]
        assert {t.weight.dtype for t in tables} == {stored_dtype(tiny_custom_voice,
                                                                  "codec_embedding")}
        assert all(_owns_its_memory(t.weight) for t in tables)
    for stack, scheme in ((engine.plan.talker, engine.precision.talker),
                          (engine.plan.predictor, engine.precision.predictor)):
        assert stack.scheme == scheme
    stats = StreamStats()
    samples = pcm_samples(engine.stream(TEXT, speaker="Ryan", stats=stats, max_frames=8))
    assert len(samples) == 8 * 1920 and np.abs(samples).max() > 100


def test_bad_inputs(custom: Engine, design: Engine, tmp_path):
    with pytest.raises(EngineLoadError, match="not found"):
        Engine.load(str(tmp_path / "nope"), data_dir=tmp_path)
    with pytest.raises(EngineLoadError, match="no config.json"):
        Engine.load(str(tmp_path), data_dir=tmp_path)
    with pytest.raises(EngineInputError, match="empty"):
        custom.stream("   ", speaker="Ryan")
    with pytest.raises(EngineInputError, match="unknown speaker"):
        custom.stream(TEXT, speaker="Nobody")
    with pytest.raises(EngineInputError, match="unknown language"):
        custom.stream(TEXT, speaker="Ryan", language="klingon")
    with pytest.raises(EngineInputError, match="needs a speaker"):
        custom.stream(TEXT)
    with pytest.raises(EngineInputError, match="no built-in speakers"):
        design.stream(TEXT, speaker="Ryan")


def test_auto_precision_per_cpu():
    from wyoming_qwen3_tts.engine.precision import (
        Cpu,
        Precision,
        choose_precision,
        detect_cpu,
        resolve,
    )

    avx2 = Cpu("x86_64", frozenset({"avx2", "fma"}))
    amx = Cpu("x86_64", avx2.features | {"avx512f", "avx512_bf16", "amx_bf16"})
    pi5 = Cpu("aarch64", frozenset({"fp", "asimd", "asimdhp", "asimddp"}))
    pi4 = Cpu("aarch64", frozenset({"fp", "asimd"}))
    # under qemu-user an ARM process reads the host's x86 flags: they mean nothing on ARM
    arm_with_x86_flags = Cpu("aarch64", amx.features)
    assert [c.cpu_class for c in (avx2, amx, pi5, pi4, arm_with_x86_flags)] == \
        ["x86-avx2", "x86-bf16", "arm-dotprod", "arm-v8.0", "arm-v8.0"]
    assert not arm_with_x86_flags.native_bf16
    picks = {c.cpu_class: resolve("auto", c) for c in (avx2, amx, pi5, pi4)}
    assert picks["x86-avx2"] == Precision(generation="int4", vocoder=torch.float32,
                                          talker="int8-fbgemm", predictor="int4-dyn32",
                                          cpu_class="x86-avx2", auto=True)
    assert (picks["x86-bf16"].talker, picks["x86-bf16"].predictor,
            picks["x86-bf16"].vocoder) == ("int8-fbgemm", "int4-dyn32", torch.bfloat16)
    assert (picks["arm-dotprod"].talker, picks["arm-dotprod"].predictor) == \
        ("int8-dyn32", "int4-kleidiai-g32")
    assert (picks["arm-v8.0"].talker, picks["arm-v8.0"].predictor) == \
        ("int8-dyn32", "int4-dyn32")  # no dotprod: our 4-bit kernel, not KleidiAI's
    assert resolve("int4", amx).predictor == "int4-dyn32"
    assert all(p.vocoder == torch.float32 for k, p in picks.items() if k != "x86-bf16")
    assert resolve("auto", Cpu("riscv64")).generation == "float32"
    assert resolve("int8-weight-only", amx).talker == "int8-wo-bf16"
    # an explicit float32 is the exact reference path, vocoder included
    assert resolve("float32", amx).vocoder == torch.float32
    # this machine: what auto picks must load here
    assert choose_precision("auto").cpu_class == detect_cpu().cpu_class
    # without the compiled kernels int8-dyn32 gives way to what ran before it
    from wyoming_qwen3_tts.engine import quantize

    saved = quantize._kernels
    quantize._kernels = lambda: None
    try:
        without = choose_precision("auto", pi4)
        # x86 (fbgemm and tinygemm run only there): torch's 4-bit kernel instead of ours
        without_x86 = choose_precision("int4", avx2) if X86 else None
        # auto: fbgemm's int8, which is faster there than torch's 4-bit kernel
        auto_without_x86 = choose_precision("auto", avx2) if X86 else None
    finally:
        quantize._kernels = saved
    assert (without.talker, without.predictor) == ("int8-wo-f32", "int8-wo-f32")
    assert without_x86 is None or without_x86.predictor == "int4-tinygemm-g32"
    assert auto_without_x86 is None or \
        (auto_without_x86.talker, auto_without_x86.predictor) == ("int8-fbgemm", "int8-fbgemm")
    assert not X86 or choose_precision("int4", avx2).predictor == "int4-dyn32"
    assert quantize.safer("int8-fbgemm") == "int8-dyn32"
    with pytest.raises(ValueError, match="unknown dtype"):
        choose_precision("float16")


def test_repo_id_from_the_data_dir_cache(tiny_custom_voice, tmp_path):
    """A repo id resolves through huggingface_hub's cache in <data_dir>/models; with
    --local-files-only nothing is fetched and a missing model is a clear error."""
    import shutil

    repo = "Qwen/Qwen3-TTS-12Hz-0.6B-CustomVoice"
    cache = tmp_path / "models" / ("models--" + repo.replace("/", "--"))
    shutil.copytree(tiny_custom_voice, cache / "snapshots" / "0123abcd")
    (cache / "refs").mkdir()
    (cache / "refs" / "main").write_text("0123abcd")
    engine = Engine.load(repo, data_dir=tmp_path, local_files_only=True, dtype="float32")
    assert engine.model_type == "custom_voice" and engine.model_name == repo
    with pytest.raises(EngineLoadError, match="local-files-only"):
        Engine.load("Qwen/Qwen3-TTS-12Hz-1.7B-Base", data_dir=tmp_path, local_files_only=True)


def test_cloned_voice_streams_after_its_reference(tiny_base, tmp_path_factory):
    """A cloned voice (ICL) is decoded after its reference codes, as the library decodes
    cat(reference, new) and cuts; the decoder state after the reference is made once."""
    from wyoming_qwen3_tts.engine.cloning import compute_clone_prompt

    engine = load(tiny_base, tmp_path_factory, **GREEDY)
    t = np.arange(3 * 24000) / 24000
    clip = (0.3 * np.sin(2 * np.pi * 180 * t) * np.sin(2 * np.pi * 2 * t)).astype(np.float32)
    clone = compute_clone_prompt(engine.model, clip, "A short sentence in my voice.")
    assert clone.icl and len(clone.ref_codes) > 30
    _, gen = engine.frames(TEXT, clone=clone, language="english", max_frames=20)
    codes = torch.stack(list(gen))
    with torch.inference_mode():
        both = torch.cat([clone.ref_codes, codes]).T.unsqueeze(0)
        whole = engine.decoder(both)[0, 0, len(clone.ref_codes) * 1920:].float().numpy()
    first = pcm_samples(engine.stream(TEXT, clone=clone, language="english", max_frames=20))
    assert len(first) == 20 * 1920
    np.testing.assert_allclose(first / 32767.0, whole, atol=2e-4)
    again = pcm_samples(engine.stream(TEXT, clone=clone, language="english", max_frames=20))
    assert np.array_equal(first, again)  # from the cached state: the same samples
    assert len(engine._context_states) == 1
