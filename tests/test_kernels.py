"""kernels.c against the torch operations it replaces, and the fused decode path against the
torch path on a real (tiny, int8) checkpoint."""

from __future__ import annotations

import logging
import tempfile

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from markers import needs_int8

from wyoming_qwen3_tts.engine import kernels
from wyoming_qwen3_tts.engine.decoding import FusedStep
from wyoming_qwen3_tts.engine.engine import Engine
from wyoming_qwen3_tts.engine.kernels import Attention


@pytest.fixture(scope="module")
def lib():
    built = kernels.load()
    assert built is not None, "the kernels must compile here (a C compiler is part of the setup)"
    return built


def close(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-5) -> bool:
    return float((a - b).norm() / b.norm()) < tol


def test_norms_and_silu(lib):
    torch.manual_seed(0)
    rows, n, eps = 3, 1024, 1e-6
    x, y, w = torch.randn(rows, n) * 5, torch.randn(rows, n), torch.rand(n) + 0.5
    out = torch.empty(rows, n)
    lib.rms_norm(out.data_ptr(), x.data_ptr(), w.data_ptr(), n, eps, rows)
    assert close(out, F.rms_norm(x, (n,), w, eps))

    residual = x.clone()
    lib.add_rms_norm(residual.data_ptr(), y.data_ptr(), out.data_ptr(), w.data_ptr(), n, eps,
                     rows)
    assert close(residual, x + y, 1e-7)
    assert close(out, F.rms_norm(x + y, (n,), w, eps))

    gate_up = torch.randn(rows, 2 * n) * 4
    act = torch.empty(rows, n)
    lib.silu_mul(act.data_ptr(), gate_up.data_ptr(), n, rows)
    gate, up = gate_up.chunk(2, dim=-1)
    assert close(act, F.silu(gate) * up)


def test_silu_exp_over_the_whole_range(lib):
    """silu_mul's vectorised exp, element by element, to a few ulp: at the extremes (exp(-gate)
    overflowing to inf gives -0, never NaN), on typical gates, and densely over [-105, 105]."""
    torch.manual_seed(0)
    extremes = torch.tensor([-1e30, -104.0, -100.0, -89.0, -88.0, -87.5, -20.0, -1e-3, -0.0,
                             0.0, 1e-3, 20.0, 87.5, 88.0, 89.0, 100.0, 104.0, 1e30])
    gate = torch.cat([extremes, torch.randn(4096) * 5, torch.linspace(-105, 105, 1 << 18)])
    up = torch.randn(gate.numel())
    up[: len(extremes)] = 1.0
    gate_up, act = torch.cat([gate, up]), torch.empty(gate.numel())
    lib.silu_mul(act.data_ptr(), gate_up.data_ptr(), gate.numel(), 1)
    assert torch.isfinite(act).all()
    head = act[: len(extremes)]
    assert torch.equal(head[:3], torch.zeros(3)) and torch.signbit(head[:3]).all()  # -0.0
    assert torch.equal(head[-4:], extremes[-4:])  # silu(x) = x
    torch.testing.assert_close(act, F.silu(gate) * up, rtol=1e-6, atol=1e-7)
    g, u = gate.double(), up.double()
    torch.testing.assert_close(act.double(), g / (1 + torch.exp(-g)) * u, rtol=3e-7, atol=1e-35)


def reference_attention(qkv, cache_k, cache_v, weight, cos, sin_signed, pos, heads, kv, d):
    """What decoding.Stack does with torch: per-head norm, rope, cache write, causal SDPA."""
    outs = []
    half = d // 2
    for j, row in enumerate(qkv):
        q, k, v = row.split([heads * d, kv * d, kv * d])
        qk = F.rms_norm(torch.cat([q, k]).view(heads + kv, d), (d,), None, 1e-6) * weight
        p = pos + j
        rotated = qk * cos[p] + torch.cat([qk[:, half:], qk[:, :half]], -1) * sin_signed[p]
        cache_k[:, p], cache_v[:, p] = rotated[heads:], v.view(kv, d)
        out = F.scaled_dot_product_attention(
            rotated[:heads].view(1, heads, 1, d), cache_k[None, :, : p + 1],
            cache_v[None, :, : p + 1], scale=d ** -0.5, enable_gqa=True)
        outs.append(out.reshape(-1))
    return torch.stack(outs)


@pytest.mark.parametrize("pos,tokens", [(0, 1), (0, 2), (5, 1), (9, 3)])
def test_attend_matches_torch(lib, pos, tokens):
    torch.manual_seed(pos)
    heads, kv, d, capacity = 16, 8, 128, 32
    weight = torch.rand(heads + kv, d) + 0.5
    cos, sin_signed = torch.randn(capacity, d), torch.randn(capacity, d)
    history_k, history_v = torch.randn(kv, capacity, d), torch.randn(kv, capacity, d)
    qkv = torch.randn(tokens, (heads + 2 * kv) * d) * 3

    ours_k, ours_v = history_k.clone(), history_v.clone()
    scratch, out = torch.empty(heads // kv, capacity), torch.empty(tokens, heads * d)
    block = Attention(weight.data_ptr(), ours_k.data_ptr(), ours_v.data_ptr(),
                      scratch.data_ptr(), heads, kv, d, capacity, 1e-6, d ** -0.5)
    lib.attend(block, qkv.data_ptr(), cos.data_ptr(), sin_signed.data_ptr(), pos, tokens,
               out.data_ptr())

    ref_k, ref_v = history_k.clone(), history_v.clone()
    expected = reference_attention(qkv, ref_k, ref_v, weight, cos, sin_signed, pos, heads, kv, d)
    assert close(out, expected)
    assert close(ours_k, ref_k) and torch.equal(ours_v, ref_v)


@pytest.fixture(scope="module")
def int8_engine(tiny_custom_voice, tmp_path_factory) -> Engine:
    return Engine.load(str(tiny_custom_voice), data_dir=tmp_path_factory.mktemp("data"),
                       dtype="int8")


def run_stack(stack, fused: bool, prompt: torch.Tensor, steps: list[torch.Tensor]):
    saved = stack._fused
    if not fused:
        stack._fused = None
    try:
        with torch.inference_mode():
            outs = [stack.forward(prompt, 0)]
            pos = prompt.shape[1]
            for x in steps:
                outs.append(stack.forward(x, pos))
                pos += x.shape[1]
    finally:
        stack._fused = saved
    return outs


@needs_int8
@pytest.mark.parametrize("which", ["talker_stack", "predictor_stack"])
def test_fused_stack_matches_torch_path(lib, int8_engine, which):
    stack = getattr(int8_engine.generator, which)
    assert isinstance(stack._fused, FusedStep), "int8 layers run through the fused kernels"
    torch.manual_seed(1)
    hidden = stack.plan.hidden
    # the code predictor starts with two tokens at once, the talker with its prompt
    prompt = torch.randn(1, 2 if which == "predictor_stack" else 40, hidden)
    steps = [torch.randn(1, 1, hidden) for _ in range(stack.cache.length)]
    run_stack(stack, True, prompt, steps[:1])  # bound to the present cache ...
    old_cache = stack.cache
    stack.reserve(prompt.shape[1] + len(steps))  # ... which the stack replaces by a longer one
    assert stack.cache is not old_cache
    fused, plain = run_stack(stack, True, prompt, steps), run_stack(stack, False, prompt, steps)
    for a, b in zip(fused, plain, strict=True):
        assert close(a, b, 1e-4)


@needs_int8
def test_engine_speaks_without_kernels(tiny_custom_voice, tmp_path_factory, monkeypatch):
    monkeypatch.setattr(kernels, "load", lambda cache_dir=None: None)
    engine = Engine.load(str(tiny_custom_voice), data_dir=tmp_path_factory.mktemp("data"),
                         dtype="int8")
    assert engine.generator.talker_stack._fused is None
    # int8 without int8_products.c: what this CPU class ran before it
    assert "int8-dyn32" not in (engine.precision.talker, engine.precision.predictor)
    pcm = b"".join(engine.stream("Hello there.", speaker="Ryan", max_frames=4, seed=3))
    assert len(pcm) == 4 * 1920 * 2 and np.abs(np.frombuffer(pcm, "<i2")).max() > 100


@needs_int8
def test_fused_and_plain_engines_speak_alike(lib, int8_engine, tiny_custom_voice,
                                             tmp_path_factory, monkeypatch):
    """Same seed, same codes: on the tiny model the two paths agree to float rounding, far
    below what could move a sampled code.  The same products (int8_products.c's among them)
    in both: only the steps between them differ."""
    monkeypatch.setattr(FusedStep, "supports", staticmethod(lambda plan: False))
    plain = Engine.load(str(tiny_custom_voice), data_dir=tmp_path_factory.mktemp("data"),
                        dtype="int8")
    text = "Hello there, this is a small test."
    codes = []
    for engine in (int8_engine, plain):
        engine.generator.generator = torch.Generator().manual_seed(5)
        codes.append(torch.stack(list(engine.frames(text, speaker="Ryan", max_frames=12)[1])))
    assert codes[0].shape[0] > 2 and torch.equal(codes[0], codes[1])


def test_load_without_compiler_or_switched_off(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.INFO)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CC", raising=False)
    assert kernels.load.__wrapped__(tmp_path) is None
    assert "No C compiler" in caplog.text

    monkeypatch.setenv("QWEN3_TTS_KERNELS", "0")
    assert kernels.load.__wrapped__(tmp_path) is None


def test_build_is_cached(tmp_path, monkeypatch):
    first = kernels.load.__wrapped__(tmp_path)
    built = list(tmp_path.glob("kernels-*.so"))
    assert first is not None and len(built) == 1
    stamp = built[0].stat().st_mtime_ns
    assert kernels.load.__wrapped__(tmp_path) is not None
    assert built[0].stat().st_mtime_ns == stamp  # reused, not rebuilt


def test_unwritable_cache_falls_back_to_temp(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    assert kernels.load.__wrapped__(blocker / "kernels") is not None
    assert list((tmp_path / "tmp" / "wyoming-qwen3-tts-kernels").glob("kernels-*.so"))


@needs_int8
def test_fused_step_refuses_positions_past_the_cache(lib, int8_engine):
    stack = int8_engine.generator.predictor_stack
    hidden = stack.plan.hidden
    length = stack.cache.length
    # the kernels write the cache unchecked: the fused step itself refuses
    with torch.inference_mode(), pytest.raises(ValueError, match="reserve"):
        stack._fused(torch.randn(1, 1, hidden), length)
    # the stack's forward grows the cache first, and release() gives it back
    with torch.inference_mode():
        stack.forward(torch.randn(1, 1, hidden), length)
    assert stack.cache.length > length
    stack.release()
    assert stack.cache.length == stack.initial_length


def test_kernels_target_can_be_picked(monkeypatch):
    """QWEN3_TTS_KERNELS_MARCH compiles for a named CPU (the benchmark's AVX2 cap: haswell)."""
    monkeypatch.setenv(kernels.MARCH_ENV, "haswell")
    assert kernels.flag_sets()[0] == ["-O3", "-march=haswell", "-fopenmp"]
    assert kernels.flag_sets()[1] == ["-O3", "-march=haswell", "-fopenmp-simd"]
    assert kernels.flag_sets()[2:] == kernels.FLAG_SETS[2:]  # the portable fallbacks stay
    monkeypatch.delenv(kernels.MARCH_ENV)
    monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
    assert kernels.flag_sets() == kernels.FLAG_SETS
