"""Guest instructions per call of torch's candidate products on aarch64, one [1 x 1024] x
[1024 x 3072] product (a talker MLP projection), random data (Gaussian weights, as trained
ones roughly are: uniform ones would flatter 4-bit).

    script/aarch64 --cpu a76 --count-instructions -- python3 script/aarch64.d/count_kernels.py
    script/aarch64 --cpu a72 --count-instructions -- python3 script/aarch64.d/count_kernels.py

Each kernel: its weights prepared once, 3 calls of warm-up, then --calls calls between two
reads of the qcount counter, twice (the two figures show the repeatability).  One torch thread
(the idle workers of a thread pool would add their spinning).  Error: relative L2 error of the
output against float32 nn.Linear on the same data.  Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import platform
import traceback

import qcount
import torch
from torch import nn

K, N = 1024, 3072


def _rel(y: torch.Tensor, ref: torch.Tensor) -> float:
    return float((y.float() - ref).norm() / ref.norm())


def _int8_rows(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8, one scale per output row: (w_int8 [N, K], scales [N])."""
    scales = w.abs().amax(dim=1).clamp(min=1e-8) / 127
    return torch.round(w / scales[:, None]).clamp(-127, 127).to(torch.int8), scales


def _int4_sym(w: torch.Tensor, group: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """KleidiAI's input: symmetric int4 (stored +8, two per byte, low nibble first) per group
    of `group` inputs: (packed uint8 [N, K/2], scales [N * K/group], dequantized w)."""
    g = w.reshape(-1, group)
    scales = g.abs().amax(dim=1, keepdim=True).clamp(min=1e-8) / 7
    q = torch.round(g / scales).clamp(-8, 7)
    deq = (q * scales).reshape_as(w)
    u = (q + 8).to(torch.uint8).reshape(w.shape[0], -1)
    packed = (u[:, 1::2] << 4 | u[:, ::2]).to(torch.uint8)
    return packed, scales.reshape(-1).contiguous(), deq


def _int4_asym(w: torch.Tensor, group: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """tinygemm's input: int4 in [0, 15] with a scale and zero per group:
    (q int32 [N, K], scales_and_zeros [K/group, N, 2], dequantized w = (q - 8) * s + z)."""
    g = w.reshape(-1, group)
    lo, hi = g.amin(dim=1, keepdim=True), g.amax(dim=1, keepdim=True)
    scales = (hi - lo).clamp(min=1e-6) / 15
    zeros = lo + scales * 8
    q = torch.round((g - lo) / scales).clamp(0, 15)
    deq = ((q - 8) * scales + zeros).reshape_as(w)
    sz = torch.cat([scales.reshape(w.shape[0], -1, 1), zeros.reshape(w.shape[0], -1, 1)], 2)
    return q.to(torch.int32).reshape_as(w), sz.transpose(0, 1).contiguous(), deq


def candidates(x: torch.Tensor, lin: nn.Linear):
    """(name, prepare) pairs; prepare() returns the call to count."""
    w, b = lin.weight.detach(), lin.bias.detach()

    def f32():
        torch.backends.mkldnn.enabled = True
        return lambda: lin(x)

    def f32_no_mkldnn():
        torch.backends.mkldnn.enabled = False
        return lambda: lin(x)

    def bf16():
        torch.backends.mkldnn.enabled = True
        lb, xb = nn.Linear(K, N).to(torch.bfloat16), x.to(torch.bfloat16)
        lb.load_state_dict({"weight": w.bfloat16(), "bias": b.bfloat16()})
        return lambda: lb(xb)

    def int8pack(dtype):
        def prepare():
            wq, s = _int8_rows(w)
            xs, ss = x.to(dtype), s.to(dtype)
            return lambda: torch.ops.aten._weight_int8pack_mm(xs, wq, ss)
        return prepare

    def kleidiai(group, bias):
        def prepare():
            packed, scales, _ = _int4_sym(w, group)
            if group < K:  # group-wise scales are bf16 for KleidiAI
                scales = scales.to(torch.bfloat16)
            pw = torch.ops.aten._dyn_quant_pack_4bit_weight(
                packed, scales, b if bias else None, group, K, N)
            return lambda: torch.ops.aten._dyn_quant_matmul_4bit(x, pw, group, K, N)
        return prepare

    def int4pack(dtype):
        def prepare():
            q, sz, _ = _int4_asym(w, 32)
            packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(q, 2)
            xs, szs = x.to(dtype), sz.to(dtype)
            return lambda: torch.ops.aten._weight_int4pack_mm_for_cpu(xs, packed, 32, szs)
        return prepare

    def dynamic(engine):
        def prepare():
            torch.backends.mkldnn.enabled = True
            torch.backends.quantized.engine = engine
            q = torch.ao.quantization.quantize_dynamic(nn.Sequential(lin), {nn.Linear},
                                                       dtype=torch.qint8)
            return lambda: q(x)
        return prepare

    def ours(scheme, m=1):
        def prepare():
            from wyoming_qwen3_tts.engine import quantize

            product = quantize.SCHEMES[scheme](lin)
            assert product.kind == scheme, f"{scheme} fell back to {product.kind}"
            xs = x.expand(m, K).contiguous()
            return lambda: product(xs)[:1]
        return prepare

    # (name, prepare, reference output of the same arithmetic without quantization error)
    return [
        ("int8-dyn32 (int8_products.c), bias", ours("int8-dyn32")),
        ("int4-dyn32 (int8_products.c), bias", ours("int4-dyn32")),
        ("int8-dyn32 (int8_products.c), bias, M=16", ours("int8-dyn32", 16)),
        ("int4-dyn32 (int8_products.c), bias, M=16", ours("int4-dyn32", 16)),
        ("float32 nn.Linear", f32),
        ("float32 nn.Linear, mkldnn.enabled = False", f32_no_mkldnn),
        ("bfloat16 nn.Linear", bf16),
        ("_weight_int8pack_mm, float32 activations", int8pack(torch.float32)),
        ("_weight_int8pack_mm, bfloat16 activations", int8pack(torch.bfloat16)),
        ("_dyn_quant_matmul_4bit (KleidiAI), group 32", kleidiai(32, False)),
        ("_dyn_quant_matmul_4bit (KleidiAI), group 32, bias", kleidiai(32, True)),
        ("_dyn_quant_matmul_4bit (KleidiAI), per channel", kleidiai(K, False)),
        ("_dyn_quant_matmul_4bit (KleidiAI), per channel, bias", kleidiai(K, True)),
        ("_weight_int4pack_mm_for_cpu, group 32, float32 activations", int4pack(torch.float32)),
        ("_weight_int4pack_mm_for_cpu, group 32, bfloat16 activations", int4pack(torch.bfloat16)),
        ("quantize_dynamic int8, qnnpack", dynamic("qnnpack")),
        ("quantize_dynamic int8, onednn", dynamic("onednn")),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--only", default="", help="run only kernels whose name contains this")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    x = torch.randn(1, K)
    lin = nn.Linear(K, N)
    with torch.no_grad():
        nn.init.normal_(lin.weight, std=K ** -0.5)  # Gaussian like trained weights
        ref = lin(x)
        print(f"torch {torch.__version__} on {platform.machine()}, "
              f"quantized engines {torch.backends.quantized.supported_engines}, "
              f"kleidiai {torch.backends.kleidiai.is_available()}, 1 thread, {args.calls} calls\n")
        print("| kernel | instructions per call (2 runs) | error |")
        print("|---|---|---|")
        for name, prepare in candidates(x, lin):
            if args.only not in name:
                continue
            try:
                call = prepare()
                for _ in range(3):
                    y = call()
                runs = []
                for _ in range(2):
                    start = qcount.instructions()
                    for _ in range(args.calls):
                        call()
                    runs.append((qcount.instructions() - start) / args.calls)
                cells = " / ".join(f"{r / 1e6:.2f} M" for r in runs)
                # KleidiAI with a bias adds it: compare with the float32 output (it has one)
                err = _rel(y, ref if "bias" in name or "Linear" in name or "quantize" in name
                           else ref - lin.bias)
                print(f"| {name} | {cells} | {100 * err:.2f} % |", flush=True)
            except Exception as exc:  # noqa: BLE001 - a failing kernel is a result
                msg = str(exc).strip().splitlines()[0][:140] if str(exc).strip() else repr(exc)
                print(f"| {name} | fails: {type(exc).__name__}: {msg} | |", flush=True)
                traceback.print_exc(limit=1)
        torch.backends.mkldnn.enabled = True


if __name__ == "__main__":
    main()
