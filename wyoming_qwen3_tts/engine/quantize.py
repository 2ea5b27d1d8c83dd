"""Quantization: the model surgery done at load, and what the decode loop is given instead.

In the spirit of gpt-fast's quantize.py, one handler, `prepare`, is applied once at load.  It
takes the library's talker in the precision it was stored in and returns a `ModelPlan`: for
each decoder stack (the talker's 28 layers, the code predictor's 5) an explicit description of
every layer (`Layer`: its four products as callables, the q/k/v split, its norms' weights and
eps) that decoding.Stack and decoding.FusedStep consume.  Nothing else in the engine looks at
how a layer was converted.

Per precision (`Precision.generation`):

- float32: the library's own linear layers, unfused (q, k, v and gate, up stay separate
  products whose outputs are concatenated): exactly the library's arithmetic, the reference
  path.  The library's modules stay intact, so its own generate still runs.
- bfloat16: q/k/v and gate/up fused into one product each (4 products a layer instead of 7),
  weights and activations in bfloat16.
- int8: the fused products quantized with fbgemm's dynamic int8 (a scale per output row,
  activations quantized per token to 7 bits), float32 activations; each product is called as
  `torch.ops.quantized.linear_dynamic` with its packed weights (the module's __call__ costs
  ~13 us more).

For bfloat16 and int8 the library's decoder layers lose their projections (their own forward
no longer works: only the plan knows the layout), the text embedding stays on disk
(MappedEmbedding) and the rest of the talker (codec head, text projection, the code
predictor's heads) is converted in place.
"""

from __future__ import annotations

import json
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
    scheme: str  # what the products are ("float32", "bfloat16", "int8-fbgemm")

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


def dense(linear: torch.nn.Linear) -> Product:
    """A float linear layer as F.linear with its own weight (what nn.Linear.forward calls)."""
    w = linear.weight
    return Product(F.linear, (w, linear.bias), linear.in_features, linear.out_features,
                   w.numel() * w.element_size(), str(w.dtype).removeprefix("torch."))


def _fbgemm_module(linear: torch.nn.Linear) -> torch.nn.Module:
    """fbgemm dynamic int8 with one scale per output row (per channel), not one per matrix:
    trained weights have rows of very different size, and a single scale spends the 8 bits
    on the largest.  With a few rows 10x larger than the rest, the product's error was 1.7 %
    against 3.3 % per tensor, at the same speed (28 talker-sized layers, 20 ms either way)."""
    linear = linear.float()
    linear.qconfig = torch.ao.quantization.per_channel_dynamic_qconfig
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notice
        return torch.ao.nn.quantized.dynamic.Linear.from_float(linear)


def fbgemm_product(module: torch.nn.Module) -> Product:
    """An fbgemm dynamic int8 linear as its op, with the arguments its forward passes."""
    params = module._packed_params
    version = getattr(module, "version", None)
    weight = params._weight_bias()[0]
    return Product(torch.ops.quantized.linear_dynamic,
                   (params._packed_params, version is not None and version >= 4),
                   module.in_features, module.out_features, weight.numel(), "int8-fbgemm")


def product_of(module: torch.nn.Module) -> Product:
    """A linear layer this module converted (float or fbgemm int8) as a Product."""
    if isinstance(module, torch.ao.nn.quantized.dynamic.Linear):
        return fbgemm_product(module)
    if isinstance(module, torch.nn.Linear):
        return dense(module)
    raise TypeError(f"not a linear layer: {type(module).__name__}")


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
    """Describe (and for a quantized scheme, convert) one library decoder layer."""
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
                 gate_up=gate_up, down=down, scaling=float(attn.scaling))


def _stack(decoder, scheme: str, multimodal: bool, activations: torch.dtype) -> StackPlan:
    """decoder: the library's talker.model or code_predictor.model."""
    act = getattr(decoder.config, "hidden_act", "silu")
    if act != "silu":  # the decode loop and kernels.c compute SiLU
        raise ValueError(f"unsupported MLP activation {act!r}")
    attn = decoder.layers[0].self_attn
    head_dim = attn.head_dim
    heads = attn.q_proj.out_features // head_dim
    kv_heads = attn.k_proj.out_features // head_dim
    intermediate = decoder.layers[0].mlp.down_proj.in_features
    if activations == torch.float32:
        decoder.norm.float()
    layers = []
    for layer in decoder.layers:
        if scheme != "float32" and activations == torch.float32:
            layer.float()  # norms in float32; the products converted from float32 copies
        layers.append(_layer(layer, scheme))
    return StackPlan(
        layers=tuple(layers), norm=_norm(decoder.norm), rotary=decoder.rotary_emb,
        multimodal=multimodal, hidden=decoder.norm.weight.shape[0], intermediate=intermediate,
        heads=heads, kv_heads=kv_heads, head_dim=head_dim, activations=activations,
        exact=scheme == "float32", scheme=scheme,
    )


def _float_linear(linear: torch.nn.Linear) -> Product:
    return dense(linear)


def _fbgemm_linear(linear: torch.nn.Linear) -> Product:
    return fbgemm_product(_fbgemm_module(linear))


# precision name -> how one of a layer's (fused) float linears becomes a Product
SCHEMES: dict[str, Callable[[torch.nn.Linear], Product]] = {
    "bfloat16": _float_linear,
    "int8": _fbgemm_linear,
}


def _quantize_in_place(module: torch.nn.Module) -> None:
    """fbgemm int8 (per channel, see _fbgemm_module) of the linear layers left in `module`,
    in place, so the library's own calls of them (codec head, text projection) keep working."""
    module.float()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notice
        torch.ao.quantization.quantize_dynamic(
            module, {torch.nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig},
            dtype=torch.qint8, inplace=True)


# -- the handler -----------------------------------------------------------------------------


@torch.no_grad()
def prepare(talker, generation: str, folder: Path | None = None) -> ModelPlan:
    """Convert the library's talker (and its code predictor) for `generation` ("float32",
    "bfloat16", "int8") and describe its two decoder stacks for the decode loop.

    Layer by layer, so the whole talker never exists in float32 at once.  With `folder` (the
    checkpoint's), bfloat16 and int8 leave the text embedding on disk (MappedEmbedding)."""
    if generation not in ("float32", *SCHEMES):
        raise ValueError(f"no quantization scheme {generation!r}")
    predictor = talker.code_predictor
    if generation == "float32":
        talker.float()
        activations = torch.float32
    else:
        if folder is not None:
            talker.model.text_embedding = MappedEmbedding(
                folder, "talker.model.text_embedding.weight", talker.model.text_embedding)
        activations = torch.bfloat16 if generation == "bfloat16" else torch.float32
        if activations == torch.bfloat16:
            talker.to(torch.bfloat16)
    talker_plan = _stack(talker.model, generation, multimodal=True, activations=activations)
    predictor_plan = _stack(predictor.model, generation, multimodal=False,
                            activations=activations)
    if generation == "int8":
        _quantize_in_place(talker)  # what is left: heads, projections, norms, embeddings
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
