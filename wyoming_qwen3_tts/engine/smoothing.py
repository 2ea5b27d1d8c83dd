"""Activation smoothing (SmoothQuant): outlier channels moved from the activations into the
weights before a layer is quantized, exactly in float arithmetic.

fbgemm's dynamic int8 (and KleidiAI's 4-bit product) quantize each token's activations with
one scale per row: when a few input channels are tens of times larger than the rest, as in
trained Qwen-family decoders, every other channel is left with a bit or two.  A product
y = x W^T is unchanged when input channel j is divided by s_j and W's column j multiplied by
it, so with s_j large on the outlier channels the quantized activations are flat again while
the weights, quantized per output row, take a little of the range instead:

    s_j = max|x_j|^alpha / max_i |W_ij|^(1 - alpha)      (SmoothQuant, Xiao et al. 2023)

and the division by s is folded into whatever computes x, so it costs nothing at run time:

- q/k/v: x is the input norm's output: its weight is divided by s;
- gate/up: x is the post-attention norm's output: that norm's weight is divided by s;
- down: x = silu(gate) * up: up's rows (and bias) are divided by s, which scales x by 1/s;
- o: its input (attention's output) has no channel outliers of its own and is left alone.

max|x_j| comes from float32 runs of the layer on fixed prompts (`RangeRecorder`: the first-load
check's, engine/faithfulness.py), and which alpha (if any) a layer gets is chosen there by
measuring its error: smoothing is only kept where it measured better.
"""

from __future__ import annotations

import dataclasses
import types
from dataclasses import dataclass

import torch

from .quantize import Layer, Product, linear_of

# the migration strengths the first-load check tries per layer (besides none): 0.5 is
# SmoothQuant's default, larger values move more of an extreme channel into the weights
ALPHAS = (0.5, 0.75)
# a smoothed conversion is kept only if its error is below this fraction of the best so far:
# not for a difference within the measurement's own noise
GAIN = 0.9
_FLOOR = 1e-5  # below this an activation or weight column counts as zero (scale 1 there)


def helps(scheme: str) -> bool:
    """Whether smoothing is tried for a scheme: those that quantize activations (fbgemm,
    KleidiAI's 4-bit) and the 4-bit ones, whose coarse weights it can spare on the channels
    that matter most (as AWQ does); not weight-only int8 or float, where it cannot help."""
    return scheme == "int8-fbgemm" or scheme.startswith("int4-")


@dataclass(frozen=True, eq=False)
class Ranges:
    """The largest |activation| per input channel of a layer's three smoothed products, in
    float32 runs: [hidden], [hidden], [intermediate]."""

    qkv: torch.Tensor
    gate_up: torch.Tensor
    down: torch.Tensor

    def tensors(self, prefix: str) -> dict[str, torch.Tensor]:
        return {f"{prefix}.{name}": getattr(self, name).contiguous()
                for name in ("qkv", "gate_up", "down")}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], prefix: str) -> Ranges:
        return cls(**{name: tensors[f"{prefix}.{name}"].float()
                      for name in ("qkv", "gate_up", "down")})


class RangeRecorder:
    """Wraps a layer's products so that running it records its inputs' ranges."""

    def __init__(self) -> None:
        self._max: dict[str, torch.Tensor] = {}

    def _wrap(self, name: str, product: Product) -> Product:
        inner = product.op

        def op(x: torch.Tensor, *args):
            seen = x.detach().abs().reshape(-1, x.shape[-1]).amax(dim=0).float()
            old = self._max.get(name)
            self._max[name] = seen if old is None else torch.maximum(old, seen)
            return inner(x, *args)

        return dataclasses.replace(product, op=op)

    def layer(self, layer: Layer) -> Layer:
        return dataclasses.replace(layer, qkv=self._wrap("qkv", layer.qkv),
                                   gate_up=self._wrap("gate_up", layer.gate_up),
                                   down=self._wrap("down", layer.down))

    def ranges(self) -> Ranges:
        return Ranges(qkv=self._max["qkv"], gate_up=self._max["gate_up"],
                      down=self._max["down"])


def scales(act_max: torch.Tensor, weights: list[torch.Tensor], alpha: float) -> torch.Tensor:
    """s per input channel for the products `weights` ([out, in] each) of one input."""
    w_max = torch.stack([w.detach().float().abs().amax(dim=0) for w in weights]).amax(dim=0)
    a, w = act_max.float(), w_max
    s = a.clamp(min=_FLOOR).pow(alpha) / w.clamp(min=_FLOOR).pow(1 - alpha)
    # a dead channel (no activation or no weight) keeps its scale: nothing to balance there
    return torch.where((a > _FLOOR) & (w > _FLOOR), s, torch.ones_like(s))


def _norm(norm, divide_by: torch.Tensor) -> types.SimpleNamespace:
    return types.SimpleNamespace(weight=norm.weight.detach().float() / divide_by,
                                 variance_epsilon=norm.variance_epsilon)


@torch.no_grad()
def smoothed(layer, ranges: Ranges, alpha: float) -> types.SimpleNamespace:
    """A float decoder layer (the library's attributes, as faithfulness.float_layer gives)
    with its outliers moved into the weights: the same function up to float rounding.  The
    input layer is left untouched (new tensors throughout)."""
    attn, mlp = layer.self_attn, layer.mlp
    q, k, v = attn.q_proj, attn.k_proj, attn.v_proj
    s_qkv = scales(ranges.qkv, [q.weight, k.weight, v.weight], alpha)
    # down first: dividing up's rows changes the columns gate/up's scales are balanced with
    s_down = scales(ranges.down, [mlp.down_proj.weight], alpha)
    up_weight = mlp.up_proj.weight.float() / s_down[:, None]
    up_bias = None if mlp.up_proj.bias is None else mlp.up_proj.bias.float() / s_down
    s_gu = scales(ranges.gate_up, [mlp.gate_proj.weight, up_weight], alpha)

    def times(linear, s, weight=None, bias=None) -> torch.nn.Linear:
        w = linear.weight.float() if weight is None else weight
        b = linear.bias if bias is None else bias
        return linear_of(w * s[None, :], None if b is None else b.float())

    ns = types.SimpleNamespace
    return ns(
        self_attn=ns(q_proj=times(q, s_qkv), k_proj=times(k, s_qkv), v_proj=times(v, s_qkv),
                     o_proj=attn.o_proj, q_norm=attn.q_norm, k_norm=attn.k_norm,
                     head_dim=attn.head_dim, scaling=attn.scaling),
        mlp=ns(gate_proj=times(mlp.gate_proj, s_gu),
               up_proj=times(mlp.up_proj, s_gu, up_weight, up_bias),
               down_proj=times(mlp.down_proj, s_down)),
        input_layernorm=_norm(layer.input_layernorm, s_qkv),
        post_attention_layernorm=_norm(layer.post_attention_layernorm, s_gu),
    )
