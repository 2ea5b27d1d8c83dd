"""int8_products.c (schemes int8-dyn32 and int4-dyn32) against the arithmetic it implements,
written in torch, on every vector path this machine can run; its error against float32, with
and without an activation outlier channel."""

from __future__ import annotations

import ast
import ctypes
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from wyoming_qwen3_tts.engine import kernels, precision, quantize

BLOCK = 32


@pytest.fixture(scope="module")
def lib():
    built = kernels.load()
    assert built is not None, "the kernels must compile here (a C compiler is part of the setup)"
    return built


def reference(x: torch.Tensor, q: torch.Tensor, scales: torch.Tensor,
              bias: torch.Tensor | None = None) -> torch.Tensor:
    """The kernel's arithmetic in float64: each token's blocks of 32 rounded to int8 with
    their own scale, exact integer block sums, the row's scale."""
    m, k = x.shape
    blocks = x.double().reshape(m, k // BLOCK, BLOCK)
    amax = blocks.abs().amax(dim=-1, keepdim=True)
    xs = (amax.float() / 127).double()  # the kernel keeps its scales in float32
    # 127 / amax as the kernel divides (a scalar over a tensor in torch is a reciprocal and a
    # product, which rounds differently and now and then moves a tie)
    inv = torch.where(amax > 0, (torch.full_like(amax, 127).float() / amax.float()).double(),
                      torch.zeros_like(amax))
    xq = torch.round((blocks.float() * inv.float()).double())
    sums = torch.einsum("mbi,nbi->mnb", xq, q.double().reshape(q.shape[0], k // BLOCK, BLOCK))
    y = (sums * xs.squeeze(-1)[:, None, :]).sum(-1) * scales.double()
    return y if bias is None else y + bias.double()


def reference4(x: torch.Tensor, nibbles: torch.Tensor, scales: torch.Tensor,
               bias: torch.Tensor | None = None) -> torch.Tensor:
    """int4-dyn32's arithmetic in float64: the activations as above; each block's weights are
    its nibbles (byte i: input i low, input i + 16 high) minus 8, times its float16 scale."""
    n, k = nibbles.shape[0], nibbles.shape[1] * 2
    halves = nibbles.long().reshape(n, k // BLOCK, 16)
    u = torch.cat([halves & 0xF, halves >> 4], dim=-1) - 8
    m = x.shape[0]
    blocks = x.double().reshape(m, k // BLOCK, BLOCK)
    amax = blocks.abs().amax(dim=-1, keepdim=True)
    xs = (amax.float() / 127).double()
    inv = torch.where(amax > 0, (torch.full_like(amax, 127).float() / amax.float()).double(),
                      torch.zeros_like(amax))
    xq = torch.round((blocks.float() * inv.float()).double())
    sums = torch.einsum("mbi,nbi->mnb", xq, u.double())
    y = (sums * xs.squeeze(-1)[:, None, :] * scales.double()[None]).sum(-1)
    return y if bias is None else y + bias.double()


def call4(lib, x: torch.Tensor, nibbles: torch.Tensor, scales: torch.Tensor,
          bias: torch.Tensor | None = None, threads: int = 2) -> torch.Tensor:
    y = torch.empty(x.shape[0], nibbles.shape[0])
    status = lib.q4_linear(y.data_ptr(), x.data_ptr(), x.shape[0], x.shape[1],
                           nibbles.data_ptr(), scales.view(torch.int16).data_ptr(),
                           None if bias is None else bias.data_ptr(), nibbles.shape[0], threads)
    assert status == 0
    return y


def call(lib, x: torch.Tensor, q: torch.Tensor, scales: torch.Tensor,
         bias: torch.Tensor | None = None, threads: int = 2) -> torch.Tensor:
    y = torch.empty(x.shape[0], q.shape[0])
    status = lib.dyn32_linear(y.data_ptr(), x.data_ptr(), x.shape[0], x.shape[1], q.data_ptr(),
                              scales.data_ptr(), None if bias is None else bias.data_ptr(),
                              q.shape[0], threads)
    assert status == 0
    return y


def quantized(n: int, k: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(n, k, generator=g)
    scales = (w.abs().amax(dim=1) / 127).contiguous()
    q = torch.round(w / scales[:, None]).clamp(-127, 127).to(torch.int8).contiguous()
    return w, q, scales


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


# m: one token, the 4-token tile, tile plus remainder; k: one block, an odd block count (the
# 512-bit path's tail), the 0.6B widths
@pytest.mark.parametrize("m", [1, 3, 4, 9])
@pytest.mark.parametrize("k", [32, 96, 1024, 3072])
def test_matches_its_arithmetic(lib, m, k):
    _, q, scales = quantized(80, k, seed=k + m)
    x = torch.randn(m, k, generator=torch.Generator().manual_seed(m))
    bias = torch.randn(80)
    expected = reference(x, q, scales, bias)
    got = call(lib, x, q, scales, bias)
    # block sums are exact; only the float32 accumulation of blocks differs
    assert relative(got, expected) < 2e-6


@pytest.mark.parametrize("m", [1, 3, 4])
# 160 and 544: whole groups of blocks (4 a step with AVX-512, 2 with AVX2) and one past them
@pytest.mark.parametrize("k", [32, 96, 160, 544, 1024, 3072])
def test_four_bit_matches_its_arithmetic(lib, m, k):
    w = torch.randn(80, k, generator=torch.Generator().manual_seed(k))
    nibbles, scales = quantize.q4_blocks(w)
    x = torch.randn(m, k, generator=torch.Generator().manual_seed(m))
    bias = torch.randn(80)
    got = call4(lib, x, nibbles, scales, bias)
    assert relative(got, reference4(x, nibbles, scales, bias)) < 2e-6


def test_four_bit_blocks_round_as_ggml_does():
    """Q4_0: the block's largest-magnitude weight maps to -8 exactly, every weight to the
    nearest of the 16 levels (at most half a step off, a step short at +8)."""
    w = torch.randn(16, 256, generator=torch.Generator().manual_seed(5))
    w[3, 40:72] = 0  # an all-zero block: scale 0, weights 0
    nibbles, scales = quantize.q4_blocks(w)
    assert nibbles.dtype == torch.uint8 and nibbles.shape == (16, 128)
    assert scales.dtype == torch.float16 and scales.shape == (16, 8)
    halves = nibbles.long().reshape(16, 8, 16)
    u = torch.cat([halves & 0xF, halves >> 4], dim=-1)
    back = ((u - 8) * scales.float()[..., None]).reshape(16, 256)
    g = w.reshape(16, 8, 32)
    extreme = torch.gather(g, -1, g.abs().argmax(-1, keepdim=True))
    assert torch.equal(torch.gather(u, -1, g.abs().argmax(-1, keepdim=True)),
                       torch.zeros_like(extreme, dtype=torch.long))  # -> -8 exactly
    step = scales.float().abs()[..., None]
    assert bool(((back.reshape(16, 8, 32) - g).abs() <= 1.0 * step + 1e-6).all())
    assert float(((back.reshape(16, 8, 32) - g).abs() <= 0.5 * step + 1e-6).float().mean()) > 0.95
    assert torch.equal(back[3, 40:72], torch.zeros(32))


def test_zero_and_tiny_blocks(lib):
    _, q, scales = quantized(64, 128)
    x = torch.zeros(2, 128)
    x[1, 40] = 1e-30  # a block whose scale underflows to almost nothing
    x[1, 100:] = torch.linspace(-3, 3, 28)
    got = call(lib, x, q, scales)
    assert torch.equal(got[0], torch.zeros(64))
    assert relative(got[1], reference(x, q, scales)[1]) < 2e-6


def test_threads_do_not_change_the_result(lib):
    _, q, scales = quantized(1000, 1024)
    x = torch.randn(5, 1024)
    assert torch.equal(call(lib, x, q, scales, threads=1), call(lib, x, q, scales, threads=2))


def test_error_against_float32_with_an_outlier_channel(lib):
    """A channel 100x the others (Qwen's massive activations): blocks of 32 keep the other
    channels' precision, where one scale per token (fbgemm's way) rounds most of them away."""
    w, q, scales = quantized(512, 1024)
    x = torch.randn(4, 1024, generator=torch.Generator().manual_seed(1))
    plain = relative(call(lib, x, q, scales), x @ w.T)
    assert plain < 0.02  # as weight-only int8 (0.008) plus 8-bit activations
    x[:, 7] *= 100
    exact = x @ w.T
    # errors measured against what the other channels contribute (the outlier's own
    # contribution, large and kept precisely by both, would hide them)
    others = x.clone()
    others[:, 7] = 0
    scale = float((others @ w.T).norm())

    def error(y: torch.Tensor) -> float:
        return float((y - exact).norm()) / scale

    per_token_scale = x.abs().amax(dim=1, keepdim=True) / 127
    per_token = (torch.round(x / per_token_scale) * per_token_scale) @ \
        (q.float() * scales[:, None]).T
    weight_only = error(x @ (q.float() * scales[:, None]).T)  # the weights' own rounding
    ours = error(call(lib, x, q, scales))
    # measured: weight-only 0.025, blocks of 32 0.047 (the outlier's own block), per token 0.22
    assert ours < 2.5 * weight_only
    assert error(per_token) > 3 * ours


def test_every_vector_path_agrees(lib, tmp_path):
    """The vector paths this machine can run (native, AVX2 without VNNI, AVX-VNNI, plain C) give the
    same results: one source, the instructions picked at compile time."""
    cc = kernels._compiler()
    assert cc
    served = lib.dyn32_path().decode()
    if platform.machine().lower() in ("x86_64", "amd64"):
        variants = {"native": (["-march=native"], served), "haswell": (["-march=haswell"], "avx2"),
                    "plain": ([], "c")}  # x86-64's baseline has no AVX2
        if "avx_vnni" in precision.cpu_flags():  # the 256-bit VNNI of N100-class CPUs
            variants["avx-vnni"] = (["-march=haswell", "-mavxvnni"], "avx-vnni")
    else:  # ARMv8.0's baseline: NEON without dotprod
        variants = {"native": (["-march=native"], served), "plain": ([], "neon")}
    _, q, scales = quantized(96, 1024, seed=3)
    # seed 171 holds a tie (60.5) that the reference once rounded apart from the kernel
    x = torch.randn(6, 1024, generator=torch.Generator().manual_seed(171))
    expected = reference(x, q, scales)
    nibbles, scales4 = quantize.q4_blocks(torch.randn(96, 1024))
    expected4 = reference4(x, nibbles, scales4)
    for name, (march, path) in variants.items():
        target = tmp_path / f"{name}.so"
        kernels._build(cc, ["-O3", *march, "-fopenmp"], target)
        built = kernels._signatures(ctypes.CDLL(str(target)))
        assert built.dyn32_path().decode() == path, name  # each build took its own path
        assert built.dyn32_threaded() == 1
        assert relative(call(built, x, q, scales), expected) < 2e-6, name
        assert relative(call4(built, x, nibbles, scales4), expected4) < 2e-6, name


def test_scheme_product_and_its_fallback(lib):
    linear = torch.nn.Linear(64, 48)
    product = quantize.int8_dyn32(linear)
    assert product.kind == "int8-dyn32" and product.weight_bytes == 64 * 48 + 48 * 4
    x = torch.randn(2, 3, 64)
    y = product(x)
    assert y.shape == (2, 3, 48)
    assert relative(y, linear(x).detach()) < 0.03
    # a width that is not a multiple of 32 (tiny test models): weight-only int8 instead
    narrow = quantize.int8_dyn32(torch.nn.Linear(16, 8))
    assert narrow.kind == quantize.WO_DEFAULT


def test_four_bit_scheme_product_error_and_its_fallback(lib):
    g = torch.Generator().manual_seed(2)
    linear = torch.nn.Linear(1024, 256)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(256, 1024, generator=g) * 0.02)
    product = quantize.SCHEMES["int4-dyn32"](linear)
    assert product.kind == "int4-dyn32"
    assert product.weight_bytes == 256 * 512 + 256 * 32 * 2  # 0.5625 bytes a weight
    x = torch.randn(2, 3, 1024, generator=g)
    y = product(x)
    assert y.shape == (2, 3, 256)
    # 16 levels per block of 32 Gaussian weights: ~9 % (torch's int4 with a zero per group of
    # 32 measured 8 %), against int8's 1 %
    error = relative(y, linear(x).detach())
    assert 0.04 < error < 0.12
    assert quantize.INT8_OF["int4-dyn32"] == "int8-dyn32"
    assert quantize.safer("int4-dyn32") == "int8-dyn32"
    narrow = quantize.SCHEMES["int4-dyn32"](torch.nn.Linear(16, 8))
    assert narrow.kind == quantize.WO_DEFAULT  # int8-dyn32's own fallback


def test_one_openmp_runtime_with_torch(lib):
    """int8_products.c shares its rows out among torch's own OpenMP threads: a process that
    loads torch and the kernels holds one libgomp (torch's), not a second runtime with threads
    of its own.  In a fresh process: other libraries (scikit-learn's) bring their own."""
    probe = (
        "import torch\n"
        "from wyoming_qwen3_tts.engine import kernels\n"
        "assert kernels.load() is not None\n"
        "with open('/proc/self/maps') as f:\n"
        "    print(sorted({l.split()[-1] for l in f if 'libgomp' in l.rsplit('/', 1)[-1]}))\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, timeout=300).stdout
    runtimes = ast.literal_eval(out.strip().splitlines()[-1])
    assert len(runtimes) == 1, runtimes
    bundled = kernels.torch_openmp()
    if bundled is not None:
        assert Path(runtimes[0]).resolve() == bundled.resolve()
