"""Quantization: the model surgery done at load, and what the decode loop is given instead.

In the spirit of gpt-fast's quantize.py, one handler, `prepare`, is applied once at load.  It
takes the library's talker in the precision it was stored in and returns a `ModelPlan`: for
each decoder stack (the talker's 28 layers, the code predictor's 5) an explicit description of
every layer (`Layer`: its four products as callables, the q/k/v split, its norms' weights and
eps) that decoding.Stack and decoding.FusedStep consume.  Nothing else in the engine looks at
how a layer was converted.

Schemes (SCHEMES; precision.py says which one each CPU class gets per --dtype):

- float32: the library's own linear layers, unfused (q, k, v and gate, up stay separate
  products whose outputs are concatenated): exactly the library's arithmetic, the reference
  path.  The library's modules stay intact, so its own generate still runs.
- bfloat16: q/k/v and gate/up fused into one product each (4 products a layer instead of 7),
  weights and activations in bfloat16.
- int8-fbgemm: fbgemm's dynamic int8 (x86 only; a scale per output row, activations
  quantized per token to 7 bits), called as `quantized::linear_dynamic` with its packed
  weights (the module's __call__ costs ~13 us more).  Fastest on x86; an activation outlier
  channel costs the other channels their precision.
- int8-dyn32: int8 weights (a scale per output row) and int8 activations with a scale per
  block of 32 inputs, quantized inside the product (int8_products.c, our own kernel, as
  ggml's Q8_0): an outlier channel costs only its own block its precision; 1.2-1.35x
  fbgemm's speed at one token here, memory-bound.  Needs the compiled kernels.
- int8-wo-bf16 / int8-wo-f32: weight-only int8 (`aten._weight_int8pack_mm`, a scale per
  output row), the product's activations in bfloat16 (x86: 10x faster than float32 there,
  even without native bf16) or float32 (ARM: fewer instructions).  Activations stay floating
  point, so outliers cost nothing.
- int4-dyn32: 4-bit weights with a float16 scale per block of 32 inputs (ggml's Q4_0 layout,
  0.5625 bytes a weight), activations per block of 32 as int8-dyn32, in the same kernel file.
- int4-tinygemm-gN: 4-bit weights, asymmetric, a scale and zero per N inputs
  (`aten._weight_int4pack_mm_for_cpu`, bfloat16 activations; x86).
- int4-kleidiai-gN: 4-bit weights, symmetric, a scale per N inputs, activations quantized to
  int8 per row inside the kernel (`aten._dyn_quant_matmul_4bit`: KleidiAI on ARM with
  dotprod; a slow reference path elsewhere).
A 4-bit product whose shape the kernel refuses (tiny test models) falls back to the
matching weight-only int8.  Every scheme but float32 and bfloat16 has float32 activations
between the products, so the fused kernels (kernels.c) run between them.

For every scheme but float32 the library's decoder layers lose their projections (their own
forward no longer works: only the plan knows the layout) and the text embedding stays on disk
(MappedEmbedding); for the quantized schemes the rest of the talker (codec head, text
projection, the code predictor's heads) becomes int8 in place (fbgemm modules, or
ProductLinear modules holding a weight-only product).
"""

from __future__ import annotations

import dataclasses
import json
import platform
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

# -- the pieces of a plan ------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Product:
    """One matrix product y = x W^T (+ b), called as `op(x, *args)`.

    `op` and `args` are public so that hot loops (FusedStep) call the op itself; `__call__`
    does the same.  Input and output have the plan's activation dtype."""

    op: Callable[..., torch.Tensor]
    args: tuple
    in_features: int
    out_features: int
    weight_bytes: int  # bytes of weights one call reads
    kind: str  # "float32", "bfloat16", "int8-fbgemm", "concat(...)"

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x, *self.args)


@dataclass(frozen=True, eq=False)
class Norm:
    """The library's RMSNorm (Qwen3TTSRMSNorm) over the last dimension, bit for bit:
    weight * (x in float32 * rsqrt(mean(x^2) + eps)) cast back to x's dtype.

    torch's rms_norm is, on the CPU, that same sequence of operations; its result times the
    weight is the library's value exactly (the library multiplies after the cast back, which
    for float32 is no cast).  `weight` may be [dim] or [heads, dim] (per-head weights, as for
    the q and k heads normed in one call)."""

    weight: torch.Tensor
    eps: float

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        dim = (self.weight.shape[-1],)
        if x.dtype == torch.float32:
            if self.weight.dim() == 1 and self.weight.dtype == torch.float32:
                return F.rms_norm(x, dim, self.weight, self.eps)  # one call instead of two
            return F.rms_norm(x, dim, None, self.eps) * self.weight
        return self.weight * F.rms_norm(x.float(), dim, None, self.eps).to(x.dtype)


@dataclass(frozen=True, eq=False)
class Layer:
    """One decoder layer (Qwen3: pre-norm attention with q/k norms and rotary, SiLU MLP)."""

    input_norm: Norm
    qkv: Product  # h -> [q | k | v]
    qkv_split: tuple[int, int, int]  # widths of q, k, v in qkv's output
    qk_norm: Norm  # weight [q heads + kv heads, head_dim]: q and k heads normed in one call
    o: Product
    post_norm: Norm
    gate_up: Product  # h -> [gate | up]
    down: Product
    scaling: float  # attention's softmax scale
    scheme: str  # the scheme its products were made with (SCHEMES)

    @property
    def products(self) -> tuple[Product, Product, Product, Product]:
        return (self.qkv, self.o, self.gate_up, self.down)


@dataclass(frozen=True, eq=False)
class StackPlan:
    """A decoder stack as the decode loop runs it."""

    layers: tuple[Layer, ...]
    norm: Norm  # the final norm
    rotary: torch.nn.Module  # the library's rotary embedding (computes the cos/sin tables)
    multimodal: bool  # the talker's multimodal rope (three position rows)
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    activations: torch.dtype  # dtype of the hidden states between the products
    exact: bool  # the reference arithmetic: run with torch operations only, never kernels.c

    @property
    def scheme(self) -> str:
        """The layers' schemes, e.g. "int8-fbgemm" or "int8-fbgemm (2 layers int8-wo-bf16)"."""
        counts: dict[str, int] = {}
        for layer in self.layers:
            counts[layer.scheme] = counts.get(layer.scheme, 0) + 1
        main = max(counts, key=lambda s: counts[s])
        others = [f"{n} layer{'s' if n > 1 else ''} {s}" for s, n in counts.items() if s != main]
        return main + (f" ({', '.join(others)})" if others else "")

    def replace_layers(self, layers: dict[int, Layer]) -> StackPlan:
        """This plan with some layers replaced (by index)."""
        return dataclasses.replace(
            self, layers=tuple(layers.get(i, layer) for i, layer in enumerate(self.layers)))

    @property
    def weight_bytes(self) -> int:
        return sum(p.weight_bytes for layer in self.layers for p in layer.products)


@dataclass(frozen=True, eq=False)
class ModelPlan:
    talker: StackPlan
    predictor: StackPlan
    predictor_heads: tuple[Product, ...]  # codebooks 1..15

    @property
    def weight_bytes_per_frame(self) -> int:
        """Weights of the stacks read per frame: the talker once, the code predictor and one
        of its heads 15 times (its 2-token start counts once)."""
        heads = sum(p.weight_bytes for p in self.predictor_heads)
        return self.talker.weight_bytes + len(self.predictor_heads) * \
            self.predictor.weight_bytes + heads


# -- products --------------------------------------------------------------------------------


def _concat(x: torch.Tensor, *parts: Product) -> torch.Tensor:
    return torch.cat([p(x) for p in parts], dim=-1)


def concat(parts: list[Product]) -> Product:
    """Several products of the same input, outputs side by side (the library's arithmetic)."""
    return Product(_concat, tuple(parts), parts[0].in_features,
                   sum(p.out_features for p in parts), sum(p.weight_bytes for p in parts),
                   "concat(" + ",".join(p.kind for p in parts) + ")")


def _linear_without_onednn(x: torch.Tensor, weight: torch.Tensor,
                           bias: torch.Tensor | None) -> torch.Tensor:
    # the flag is global: another thread's convolution at this moment would only be slower
    enabled = torch._C._get_mkldnn_enabled()
    torch._C._set_mkldnn_enabled(False)
    try:
        return F.linear(x, weight, bias)
    finally:
        torch._C._set_mkldnn_enabled(enabled)


# On aarch64 oneDNN (with ACL) prepares the weight again on every call: a single-token
# float32 product [1 x 1024] x [1024 x 3072] costs 19 M instructions with it and 1.9 M
# without (benchmarks/aarch64-kernels.md), for the same sums (up to float rounding)
FLOAT_LINEAR = _linear_without_onednn if platform.machine().lower() in ("aarch64", "arm64") \
    else F.linear


def dense(linear: torch.nn.Linear) -> Product:
    """A float linear layer as F.linear with its own weight (what nn.Linear.forward calls;
    float32 on aarch64: with oneDNN off, FLOAT_LINEAR)."""
    w = linear.weight
    op = FLOAT_LINEAR if w.dtype == torch.float32 else F.linear
    return Product(op, (w, linear.bias), linear.in_features, linear.out_features,
                   w.numel() * w.element_size(), str(w.dtype).removeprefix("torch."))


def _fbgemm_module(linear: torch.nn.Linear) -> torch.nn.Module:
    """fbgemm dynamic int8 with one scale per output row (per channel), not one per matrix:
    trained weights have rows of very different size, and a single scale spends the 8 bits
    on the largest.  With a few rows 10x larger than the rest, the product's error was 1.7 %
    against 3.3 % per tensor, at the same speed (28 talker-sized layers, 20 ms either way)."""
    linear = linear.float()
    linear.qconfig = torch.ao.quantization.per_channel_dynamic_qconfig  # type: ignore[assignment]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notice
        return torch.ao.nn.quantized.dynamic.Linear.from_float(linear)


# The operator's compiled entry point.  Called through torch.ops, an op that takes a
# TorchScript object (the packed weight) has every call's arguments searched in Python for
# fake script objects first: 17 calls a frame, 4 ms of a frame measured.  `_op` is that
# entry point behind the public overload; without it (another torch), the overload.
_FBGEMM_OP = getattr(torch.ops.quantized.linear_dynamic.default, "_op",
                     torch.ops.quantized.linear_dynamic.default)


def fbgemm_product(module: torch.nn.Module) -> Product:
    """An fbgemm dynamic int8 linear as its op, with the arguments its forward passes."""
    assert isinstance(module, torch.ao.nn.quantized.dynamic.Linear), type(module)
    params = module._packed_params
    version = getattr(module, "version", None)
    weight = params._weight_bias()[0]
    return Product(_FBGEMM_OP,
                   (params._packed_params, version is not None and version >= 4),
                   module.in_features, module.out_features, weight.numel(), "int8-fbgemm")


def _fbgemm_linear(linear: torch.nn.Linear) -> Product:
    return fbgemm_product(_fbgemm_module(linear))


def _float_linear(linear: torch.nn.Linear) -> Product:
    return dense(linear)


def _with_bias(y: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return y if bias is None else y + bias


def _int8_wo_op(x: torch.Tensor, weight: torch.Tensor, scales: torch.Tensor,
                act: torch.dtype, bias: torch.Tensor | None) -> torch.Tensor:
    y = torch.ops.aten._weight_int8pack_mm(x.reshape(-1, x.shape[-1]).to(act), weight, scales)
    return _with_bias(y.view(*x.shape[:-1], -1).to(x.dtype), bias)


def int8_weight_only(linear: torch.nn.Linear, act: torch.dtype) -> Product:
    """Symmetric int8 weights, one scale per output row; the product in `act`."""
    w = linear.weight.detach().float()
    scales = w.abs().amax(dim=1).clamp(min=1e-12) / 127
    q = torch.round(w / scales[:, None]).clamp(-127, 127).to(torch.int8).contiguous()
    bias = None if linear.bias is None else linear.bias.detach().float()
    name = "int8-wo-bf16" if act == torch.bfloat16 else "int8-wo-f32"
    return Product(_int8_wo_op, (q, scales.to(act), act, bias), linear.in_features,
                   linear.out_features, q.numel() + scales.numel() * 2, name)


def _block_op(x: torch.Tensor, weight: torch.Tensor, scales: torch.Tensor,
              bias: torch.Tensor | None, kernel, k: int) -> torch.Tensor:
    """One of int8_products.c's products (dyn32_linear, q4_linear: the same signature) on
    `x` [..., k]; `weight` [n, ...] as that kernel stores it."""
    n = weight.shape[0]
    flat = x.reshape(-1, k)
    if flat.dtype != torch.float32 or not flat.is_contiguous():
        flat = flat.float().contiguous()
    y = torch.empty(flat.shape[0], n)
    status = kernel(y.data_ptr(), flat.data_ptr(), flat.shape[0], k, weight.data_ptr(),
                    scales.data_ptr(), None if bias is None else bias.data_ptr(), n,
                    torch.get_num_threads())
    if status:
        raise MemoryError("int8_products.c: no memory for the quantized activations")
    return y.view(*x.shape[:-1], n).to(x.dtype)


def int8_dyn32(linear: torch.nn.Linear) -> Product:
    """Symmetric int8 weights, one scale per output row; each block of 32 inputs of each
    token quantized to int8 with its own scale inside the product (int8_products.c, threaded
    as torch is).  Where the kernels are not built or the width is not a multiple of 32 (tiny
    test models), the matching weight-only int8 instead."""
    lib = _kernels()
    if lib is None or linear.in_features % 32 or linear.in_features > DYN32_MAX_IN:
        return _int8_wo_default(linear)
    w = linear.weight.detach().float()
    scales = (w.abs().amax(dim=1).clamp(min=1e-12) / 127).contiguous()
    q = torch.round(w / scales[:, None]).clamp(-127, 127).to(torch.int8).contiguous()
    bias = None if linear.bias is None else linear.bias.detach().float().contiguous()
    return Product(_block_op, (q, scales, bias, lib.dyn32_linear, linear.in_features),
                   linear.in_features,
                   linear.out_features, q.numel() + scales.numel() * 4, "int8-dyn32")


DYN32_MAX_IN = 16384  # int8_products.c's MAX_K


def q4_blocks(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """float [n, k] -> (nibbles uint8 [n, k / 2], float16 scales [n, k / 32]), ggml's Q4_0:
    per block of 32, the scale is the block's largest-magnitude weight over -8 (so that it
    maps to -8 exactly), w ~ (u - 8) * scale with u in [0, 15]; byte i of a block holds
    u[i] low and u[i + 16] high."""
    n, k = w.shape
    g = w.float().reshape(n, k // 32, 32)
    extreme = torch.gather(g, -1, g.abs().argmax(dim=-1, keepdim=True))
    scales = (extreme / -8).to(torch.float16)
    inv = torch.where(scales != 0, 1 / scales.float(), torch.zeros_like(scales, dtype=torch.float))
    u = (torch.round(g * inv) + 8).clamp(0, 15).to(torch.uint8)
    nibbles = (u[..., :16] | u[..., 16:] << 4).reshape(n, k // 2).contiguous()
    return nibbles, scales.reshape(n, k // 32).contiguous()


def int4_dyn32(linear: torch.nn.Linear) -> Product:
    """4-bit weights, a float16 scale per block of 32 inputs (ggml's Q4_0, q4_blocks), the
    activations quantized per block of 32 inside the product (int8_products.c, as
    int8-dyn32).  Where the kernels are not built or the width is not a multiple of 32, the
    matching int8 (int8_dyn32's own fallback)."""
    lib = _kernels()
    if lib is None or linear.in_features % 32 or linear.in_features > DYN32_MAX_IN:
        return int8_dyn32(linear)
    nibbles, scales = q4_blocks(linear.weight.detach())
    bias = None if linear.bias is None else linear.bias.detach().float().contiguous()
    return Product(_block_op, (nibbles, scales.view(torch.int16), bias, lib.q4_linear,
                               linear.in_features), linear.in_features, linear.out_features,
                   nibbles.numel() + scales.numel() * 2, "int4-dyn32")


def _kernels():
    from . import kernels

    return kernels.load()


def _int4_tinygemm_op(x: torch.Tensor, packed: torch.Tensor, group: int,
                      scales_zeros: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    y = torch.ops.aten._weight_int4pack_mm_for_cpu(
        x.reshape(-1, x.shape[-1]).to(torch.bfloat16), packed, group, scales_zeros)
    return _with_bias(y.view(*x.shape[:-1], -1).to(x.dtype), bias)


def int4_tinygemm(linear: torch.nn.Linear, group: int) -> Product:
    """4-bit weights in [0, 15], w = (q - 8) * scale + zero per group of `group` inputs
    (the layout of torch's tinygemm CPU kernel), bfloat16 activations."""
    w = linear.weight.detach().float()
    n, k = w.shape
    g = w.reshape(n, k // group, group)
    lo, hi = g.amin(dim=-1), g.amax(dim=-1)
    scales = (hi - lo).clamp(min=1e-8) / 15
    zeros = lo + scales * 8
    q = torch.round((g - lo[..., None]) / scales[..., None]).clamp(0, 15).to(torch.int32)
    packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(q.reshape(n, k), 2)
    scales_zeros = torch.stack([scales, zeros], dim=-1).transpose(0, 1).contiguous() \
        .to(torch.bfloat16)
    bias = None if linear.bias is None else linear.bias.detach().float()
    return Product(_int4_tinygemm_op, (packed, group, scales_zeros, bias), k, n,
                   packed.numel() + scales_zeros.numel() * 2, f"int4-tinygemm-g{group}")


def _int4_kleidiai_op(x: torch.Tensor, packed: torch.Tensor, group: int, k: int, n: int,
                      bias: torch.Tensor | None) -> torch.Tensor:
    y = torch.ops.aten._dyn_quant_matmul_4bit(x.reshape(-1, k).float(), packed, group, k, n)
    return _with_bias(y.view(*x.shape[:-1], n).to(x.dtype), bias)


def int4_kleidiai(linear: torch.nn.Linear, group: int) -> Product:
    """4-bit symmetric weights (stored + 8, two a byte, low nibble first), a scale per group
    of `group` inputs (bfloat16; float32 when one group spans the row): KleidiAI's layout.
    The bias is added outside: the reference path (ARMv8.0) refuses one."""
    w = linear.weight.detach().float()
    n, k = w.shape
    group = min(group, k)
    g = w.reshape(-1, group)
    scales = g.abs().amax(dim=1, keepdim=True).clamp(min=1e-8) / 7
    u = (torch.round(g / scales).clamp(-8, 7) + 8).to(torch.uint8).reshape(n, k)
    nibbles = (u[:, 1::2] << 4 | u[:, ::2]).contiguous()
    scale_dtype = torch.float32 if group == k else torch.bfloat16
    packed = torch.ops.aten._dyn_quant_pack_4bit_weight(
        nibbles, scales.reshape(-1).to(scale_dtype), None, group, k, n)
    bias = None if linear.bias is None else linear.bias.detach().float()
    return Product(_int4_kleidiai_op, (packed, group, k, n, bias), k, n,
                   nibbles.numel() + scales.numel() * 2, f"int4-kleidiai-g{group}")


def _four_bit(make, group: int, fallback: Callable[[torch.nn.Linear], Product]):
    """A 4-bit converter that falls back to int8 where the kernel refuses the shape."""
    def convert(linear: torch.nn.Linear) -> Product:
        if linear.in_features % min(group, linear.in_features) == 0:
            try:
                return make(linear, group)
            except RuntimeError:  # e.g. tinygemm: groups of 32-128 only, N a multiple of 16
                pass
        return fallback(linear)

    return convert


def _int8_wo_bf16(linear: torch.nn.Linear) -> Product:
    return int8_weight_only(linear, torch.bfloat16)


def _int8_wo_f32(linear: torch.nn.Linear) -> Product:
    return int8_weight_only(linear, torch.float32)


_ARM = platform.machine().lower() in ("aarch64", "arm64")
# weight-only int8 as this architecture runs it best (bfloat16 activations on x86: MEASURED)
WO_DEFAULT = "int8-wo-f32" if _ARM else "int8-wo-bf16"


def _int8_wo_default(linear: torch.nn.Linear) -> Product:
    return int8_weight_only(linear, torch.float32 if _ARM else torch.bfloat16)


# scheme -> how one of a layer's (fused) float linears becomes a Product
SCHEMES: dict[str, Callable[[torch.nn.Linear], Product]] = {
    "float32": _float_linear,
    "bfloat16": _float_linear,
    "int8-fbgemm": _fbgemm_linear,
    "int8-dyn32": int8_dyn32,
    "int4-dyn32": int4_dyn32,
    "int8-wo-bf16": _int8_wo_bf16,
    "int8-wo-f32": _int8_wo_f32,
    **{f"int4-tinygemm-g{g}": _four_bit(int4_tinygemm, g, _int8_wo_bf16) for g in (32, 64, 128)},
    **{f"int4-kleidiai-g{g}": _four_bit(int4_kleidiai, g, int8_dyn32) for g in (32, 64, 128)},
}
# the int8 scheme for what a 4-bit scheme leaves in int8 (heads, projections) and the
# faithfulness check's fallback for a layer out of bounds
INT8_OF = {"int8-fbgemm": "int8-fbgemm", "int8-dyn32": "int8-dyn32", "int4-dyn32": "int8-dyn32",
           "int8-wo-bf16": "int8-wo-bf16",
           "int8-wo-f32": "int8-wo-f32",
           **{f"int4-tinygemm-g{g}": "int8-wo-bf16" for g in (32, 64, 128)},
           **{f"int4-kleidiai-g{g}": "int8-dyn32" for g in (32, 64, 128)}}
# one step safer (activations kept floating point, or more bits), for a layer out of bounds
# (fbgemm -> int8-dyn32: activations per block of 32 instead of per token, nearly fbgemm's
# speed; then weight-only)
SAFER = {"int8-fbgemm": "int8-dyn32", "int8-dyn32": WO_DEFAULT, "int4-dyn32": "int8-dyn32",
         "int8-wo-bf16": "float32", "int8-wo-f32": "float32",
         **{f"int4-tinygemm-g{g}": "int8-wo-bf16" for g in (32, 64, 128)},
         **{f"int4-kleidiai-g{g}": "int8-dyn32" for g in (32, 64, 128)}}


def safer(scheme: str) -> str | None:
    """The next safer scheme that runs here (SAFER, skipping what this machine lacks: without
    the compiled kernels fbgemm goes straight to weight-only), or None."""
    nxt = SAFER.get(scheme)
    while nxt is not None and unavailable(nxt):
        nxt = SAFER.get(nxt)
    return nxt


def unavailable(scheme: str) -> str:
    """Why `scheme` cannot run with this torch on this machine ('' if it can)."""
    if scheme not in SCHEMES:
        return f"unknown scheme {scheme!r}"
    ops = torch.ops.aten
    if scheme == "int8-fbgemm":
        if "fbgemm" not in torch.backends.quantized.supported_engines or \
                platform.machine().lower() not in ("x86_64", "amd64"):
            return "fbgemm (x86-64 only)"
    elif scheme in ("int8-dyn32", "int4-dyn32") and _kernels() is None:
        return "the compiled kernels (int8_products.c: a C compiler, QWEN3_TTS_KERNELS not 0)"
    elif scheme.startswith("int8-wo") and not hasattr(ops, "_weight_int8pack_mm"):
        return "aten._weight_int8pack_mm"
    elif scheme.startswith("int4-tinygemm") and not hasattr(ops, "_weight_int4pack_mm_for_cpu"):
        return "aten._weight_int4pack_mm_for_cpu"
    elif scheme.startswith("int4-kleidiai") and not hasattr(ops, "_dyn_quant_matmul_4bit"):
        return "aten._dyn_quant_matmul_4bit"
    return ""


class ProductLinear(torch.nn.Module):
    """A library linear layer replaced by a Product (for the library's own calls of it)."""

    def __init__(self, product: Product) -> None:
        super().__init__()
        self.product = product
        self.in_features, self.out_features = product.in_features, product.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.product(x.float())


def product_of(module: torch.nn.Module) -> Product:
    """A linear layer this module converted (float, fbgemm int8 or a Product) as a Product."""
    if isinstance(module, torch.ao.nn.quantized.dynamic.Linear):
        return fbgemm_product(module)
    if isinstance(module, ProductLinear):
        return module.product
    if isinstance(module, torch.nn.Linear):
        return dense(module)
    raise TypeError(f"not a linear layer: {type(module).__name__}")


def linear_of(weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.nn.Linear:
    """An nn.Linear holding these tensors (no copy, no initialisation)."""
    linear = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None,
                             device="meta")
    linear.weight = torch.nn.Parameter(weight, requires_grad=False)
    if bias is not None:
        linear.bias = torch.nn.Parameter(bias, requires_grad=False)
    return linear


def _concat_linear(parts: list[torch.nn.Linear]) -> torch.nn.Linear:
    fused = torch.nn.Linear(parts[0].in_features, sum(p.out_features for p in parts),
                            bias=parts[0].bias is not None, dtype=parts[0].weight.dtype)
    with torch.no_grad():
        fused.weight.copy_(torch.cat([p.weight for p in parts]))
        if fused.bias is not None:
            fused.bias.copy_(torch.cat([p.bias for p in parts]))
    return fused


# -- layers and stacks -----------------------------------------------------------------------


def _norm(module) -> Norm:
    return Norm(module.weight, float(module.variance_epsilon))


def _qk_norm(attn) -> Norm:
    """q and k heads' norm weights side by side, one row per head (normed in one call)."""
    q_heads = attn.q_proj.out_features // attn.head_dim
    k_heads = attn.k_proj.out_features // attn.head_dim
    weight = torch.cat([attn.q_norm.weight.expand(q_heads, -1),
                        attn.k_norm.weight.expand(k_heads, -1)]).contiguous()
    if attn.q_norm.variance_epsilon != attn.k_norm.variance_epsilon:
        raise ValueError("q and k norms with different eps")
    return Norm(weight, float(attn.q_norm.variance_epsilon))


def _layer(layer, scheme: str) -> Layer:
    """Describe (and for a converting scheme, convert) one library decoder layer; `layer`
    has the library's attributes (a library layer, or one rebuilt from the file)."""
    attn, mlp = layer.self_attn, layer.mlp
    split = (attn.q_proj.out_features, attn.k_proj.out_features, attn.v_proj.out_features)
    qk_norm = _qk_norm(attn)
    if scheme == "float32":  # the library's modules, unchanged and unfused
        qkv = concat([dense(attn.q_proj), dense(attn.k_proj), dense(attn.v_proj)])
        o = dense(attn.o_proj)
        gate_up = concat([dense(mlp.gate_proj), dense(mlp.up_proj)])
        down = dense(mlp.down_proj)
    else:
        fused_qkv = _concat_linear([attn.q_proj, attn.k_proj, attn.v_proj])
        fused_gate_up = _concat_linear([mlp.gate_proj, mlp.up_proj])
        # the library's layer no longer runs by itself: only this plan knows the layout
        del attn.q_proj, attn.k_proj, attn.v_proj, mlp.gate_proj, mlp.up_proj
        convert = SCHEMES[scheme]
        qkv, gate_up = convert(fused_qkv), convert(fused_gate_up)
        o, down = convert(attn.o_proj), convert(mlp.down_proj)
        del attn.o_proj, mlp.down_proj
    return Layer(input_norm=_norm(layer.input_layernorm), qkv=qkv, qkv_split=split,
                 qk_norm=qk_norm, o=o, post_norm=_norm(layer.post_attention_layernorm),
                 gate_up=gate_up, down=down, scaling=float(attn.scaling), scheme=scheme)


def activations_of(scheme: str) -> torch.dtype:
    """dtype of the hidden states between a scheme's products."""
    return torch.bfloat16 if scheme == "bfloat16" else torch.float32


def _stack(decoder, scheme: str, multimodal: bool) -> StackPlan:
    """decoder: the library's talker.model or code_predictor.model."""
    act = getattr(decoder.config, "hidden_act", "silu")
    if act != "silu":  # the decode loop and kernels.c compute SiLU
        raise ValueError(f"unsupported MLP activation {act!r}")
    activations = activations_of(scheme)
    attn = decoder.layers[0].self_attn
    head_dim = attn.head_dim
    heads = attn.q_proj.out_features // head_dim
    kv_heads = attn.k_proj.out_features // head_dim
    intermediate = decoder.layers[0].mlp.down_proj.in_features
    decoder.norm.to(activations)
    layers = []
    for layer in decoder.layers:
        # norms in the activations' dtype; products converted from copies in that dtype, so
        # the whole talker never exists in float32 at once
        layer.to(activations)
        layers.append(_layer(layer, scheme))
    return StackPlan(
        layers=tuple(layers), norm=_norm(decoder.norm), rotary=decoder.rotary_emb,
        multimodal=multimodal, hidden=decoder.norm.weight.shape[0], intermediate=intermediate,
        heads=heads, kv_heads=kv_heads, head_dim=head_dim, activations=activations,
        exact=scheme == "float32",
    )


def _quantize_in_place(module: torch.nn.Module, scheme: str) -> None:
    """The linear layers left in `module` (codec head, text projection, the code predictor's
    heads) in int8, in place, so the library's own calls of them keep working: fbgemm modules
    (per channel, see _fbgemm_module) or ProductLinear modules of the scheme.

    The embedding tables keep the dtype they were stored in (every lookup casts its rows to
    the activations' dtype): bfloat16 to float32 is exact, and the code predictor's 15 tables
    and the codec table would hold 69 MB more in float32 (0.6B).  Every tensor gets memory of
    its own: from_pretrained's tensors are views of the memory-mapped checkpoint, and one view
    left keeps the whole mapping (and every page of it read while converting) resident."""
    for sub in module.modules():
        keep = isinstance(sub, torch.nn.Embedding)
        for param in sub.parameters(recurse=False):
            param.data = param.data.clone() if keep else param.data.float()
        for name, buffer in sub.named_buffers(recurse=False):
            if buffer.is_floating_point():
                setattr(sub, name, buffer.float())
    if scheme == "int8-fbgemm":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notice
            torch.ao.quantization.quantize_dynamic(
                module, {torch.nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig},
                dtype=torch.qint8, inplace=True)
        return
    convert = SCHEMES[scheme]
    for name, sub in list(module.named_modules()):
        for child_name, child in list(sub.named_children()):
            if type(child) is torch.nn.Linear:
                setattr(sub, child_name, ProductLinear(convert(child)))
        if isinstance(sub, torch.nn.ModuleList):
            for i, child in enumerate(sub):
                if type(child) is torch.nn.Linear:
                    sub[i] = ProductLinear(convert(child))
        del name


# -- the handler -----------------------------------------------------------------------------


@torch.no_grad()
def prepare(talker, talker_scheme: str, predictor_scheme: str | None = None,
            folder: Path | None = None) -> ModelPlan:
    """Convert the library's talker and its code predictor (SCHEMES names; the predictor's
    defaults to the talker's) and describe the two decoder stacks for the decode loop.

    Layer by layer, so the whole talker never exists in float32 at once.  With `folder` (the
    checkpoint's), every scheme but float32 leaves the text embedding on disk
    (MappedEmbedding)."""
    predictor_scheme = predictor_scheme or talker_scheme
    for scheme in (talker_scheme, predictor_scheme):
        if scheme not in SCHEMES:
            raise ValueError(f"no quantization scheme {scheme!r}")
    if (talker_scheme == "float32") != (predictor_scheme == "float32") or \
            activations_of(talker_scheme) != activations_of(predictor_scheme):
        raise ValueError(f"talker {talker_scheme} and code predictor {predictor_scheme} "
                         "do not go together (float32 and bfloat16 are whole-model choices)")
    predictor = talker.code_predictor
    if talker_scheme == "float32":
        talker.float()
    else:
        if folder is not None:
            talker.model.text_embedding = MappedEmbedding(
                folder, "talker.model.text_embedding.weight", talker.model.text_embedding)
        if talker_scheme == "bfloat16":
            talker.to(torch.bfloat16)
    talker_plan = _stack(talker.model, talker_scheme, multimodal=True)
    predictor_plan = _stack(predictor.model, predictor_scheme, multimodal=False)
    if talker_scheme in INT8_OF:
        # what is left (heads, projections, norms, embeddings): int8 like the talker
        _quantize_in_place(talker, INT8_OF[talker_scheme])
    return ModelPlan(talker=talker_plan, predictor=predictor_plan,
                     predictor_heads=tuple(product_of(h) for h in predictor.lm_head))


# -- the text embedding, read from the file ------------------------------------------------


class MappedEmbedding(torch.nn.Module):
    """An embedding table read row by row from the checkpoint file, never held in memory.

    The talker's text embedding (151936 x 2048: 622 MB in bfloat16) is only looked up for the
    few dozen tokens of a prompt.  safetensors memory-maps the file: the rows read come from
    the page cache, and the table costs no resident memory of its own.
    """

    def __init__(self, folder: Path, name: str, like: torch.nn.Embedding) -> None:
        super().__init__()
        from safetensors import safe_open

        self.name = name
        self.embedding_dim = like.embedding_dim
        self.num_embeddings = like.num_embeddings
        self._file = safe_open(str(_file_holding(folder, name)), framework="pt")
        self._rows = self._file.get_slice(name)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        flat = ids.reshape(-1).tolist()
        rows = torch.stack([self._rows[i:i + 1][0] for i in flat]) if flat else \
            torch.empty(0, self.embedding_dim)
        return rows.view(*ids.shape, self.embedding_dim)


def _file_holding(folder: Path, name: str) -> Path:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        with open(index, encoding="utf-8") as f:
            return folder / json.load(f)["weight_map"][name]
    return folder / "model.safetensors"
