"""quantize.py: the plan each precision makes of the decoder stacks, on the tiny checkpoint."""

from __future__ import annotations

import warnings

import pytest
import torch

from wyoming_qwen3_tts.engine import quantize
from wyoming_qwen3_tts.engine.decoding import FusedStep
from wyoming_qwen3_tts.engine.qwen_import import import_qwen_tts


def library_talker(folder):
    tts = import_qwen_tts().Qwen3TTSModel.from_pretrained(str(folder), dtype="auto",
                                                          local_files_only=True)
    return tts.model.talker.eval()


SCHEMES = ["float32", "bfloat16", "int8-fbgemm", "int8-wo-bf16", "int8-wo-f32",
           "int4-tinygemm-g32", "int4-kleidiai-g32", "int8-dyn32", "int4-dyn32"]


def runs_here(scheme: str):
    why = quantize.unavailable(scheme)
    return pytest.param(scheme, marks=pytest.mark.skipif(bool(why), reason=why))


@pytest.mark.parametrize("generation", [runs_here(s) for s in SCHEMES])
def test_plan_describes_every_layer(tiny_custom_voice, generation):
    talker = library_talker(tiny_custom_voice)
    tcfg = talker.config
    plan = quantize.prepare(talker, generation, folder=tiny_custom_voice)
    stack = plan.talker
    assert len(stack.layers) == tcfg.num_hidden_layers
    assert stack.heads == tcfg.num_attention_heads and stack.kv_heads == tcfg.num_key_value_heads
    d = stack.head_dim
    for layer in stack.layers:
        assert layer.qkv_split == (stack.heads * d, stack.kv_heads * d, stack.kv_heads * d)
        assert layer.qkv.out_features == sum(layer.qkv_split)
        assert layer.gate_up.out_features == 2 * stack.intermediate
        assert layer.qk_norm.weight.shape == (stack.heads + stack.kv_heads, d)
    assert len(plan.predictor_heads) == tcfg.num_code_groups - 1
    assert stack.exact == (generation == "float32")
    assert FusedStep.supports(stack) == (generation not in ("float32", "bfloat16"))
    assert stack.activations == (torch.bfloat16 if generation == "bfloat16" else torch.float32)
    assert stack.scheme == generation
    kinds = {p.kind for layer in stack.layers for p in layer.products}
    if generation == "float32":
        assert kinds == {"concat(float32,float32,float32)", "concat(float32,float32)",
                         "float32"}
    elif generation.startswith("int4"):
        # 4 bits where the kernel takes the shape, else the matching int8
        assert kinds <= {generation, quantize.INT8_OF[generation]}
        assert generation in {p.kind for p in plan.predictor.layers[0].products} | kinds
    else:
        assert kinds == {generation}
    # fewer bytes per frame the smaller the weights
    assert plan.weight_bytes_per_frame > 0


def test_float32_keeps_the_library_layers(tiny_custom_voice):
    talker = library_talker(tiny_custom_voice)
    layer = talker.model.layers[0]
    plan = quantize.prepare(talker, "float32")
    described = plan.talker.layers[0]
    # the products are the library's own weights (no copy), and its layers still run
    assert described.o.args[0] is layer.self_attn.o_proj.weight
    assert hasattr(layer.self_attn, "q_proj") and hasattr(layer.mlp, "gate_proj")


def test_norm_is_the_library_rmsnorm_bit_for_bit(tiny_custom_voice):
    talker = library_talker(tiny_custom_voice)
    module = talker.model.layers[0].input_layernorm
    torch.manual_seed(0)
    for dtype in (torch.float32, torch.bfloat16):
        module.to(dtype)
        x = (torch.randn(1, 5, module.weight.shape[0]) * 3).to(dtype)
        norm = quantize.Norm(module.weight, module.variance_epsilon)
        assert torch.equal(norm(x), module(x))
        # per-head weights, several heads in one call: each head as the library norms it
        heads = torch.stack([module.weight, module.weight.flip(0)])
        two = x.expand(2, -1, -1).transpose(0, 1)  # [5, 2, dim]
        per_head = quantize.Norm(heads, module.variance_epsilon)(two)
        module.weight.data = heads[1].clone()
        assert torch.equal(per_head[:, 1], module(two[:, 1]))
        module.weight.data = heads[0].clone()


@pytest.mark.skipif(bool(quantize.unavailable("int8-fbgemm")),
                    reason=quantize.unavailable("int8-fbgemm") or "-")
def test_fbgemm_product_equals_the_quantized_module():
    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 96)
    product = quantize.SCHEMES["int8-fbgemm"](linear)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = torch.ao.quantization.quantize_dynamic(
            torch.nn.Sequential(linear),
            {torch.nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig},
            dtype=torch.qint8)[0]
    x = torch.randn(3, 64)
    assert torch.equal(product(x), module(x))
    assert product.weight_bytes == 64 * 96 and product.kind == "int8-fbgemm"


@pytest.mark.parametrize("scheme,tolerance", [
    ("int8-wo-bf16", 0.02), ("int8-wo-f32", 0.02), ("int4-tinygemm-g32", 0.12),
    ("int4-tinygemm-g128", 0.15), ("int4-kleidiai-g32", 0.15), ("int4-kleidiai-g128", 0.18),
    ("int8-dyn32", 0.02), ("int4-dyn32", 0.12)])
def test_products_compute_the_linear(scheme, tolerance):
    """Each kernel's product against float32 at a talker-sized shape (Gaussian weights:
    measured 0.8 % for int8, 8-10 % for 4 bits), with its bias, on 1 and 3 tokens."""
    if quantize.unavailable(scheme):
        pytest.skip(quantize.unavailable(scheme))
    torch.manual_seed(0)
    linear = torch.nn.Linear(256, 384)
    product = quantize.SCHEMES[scheme](linear)
    assert product.kind == scheme and product.out_features == 384
    for tokens in (1, 3):
        x = torch.randn(1, tokens, 256)
        want = linear(x).detach()
        got = product(x)
        assert got.shape == want.shape and got.dtype == torch.float32
        assert float((got - want).norm() / want.norm()) < tolerance
    bits = 8 if scheme.startswith("int8") else 4
    assert product.weight_bytes <= 256 * 384 * (bits / 8 + 0.125)  # + scales (and zeros)


def test_four_bit_falls_back_where_the_kernel_refuses_the_shape():
    linear = torch.nn.Linear(16, 40)  # tinygemm: groups of 32 to 128, N a multiple of 16
    assert quantize.SCHEMES["int4-tinygemm-g32"](linear).kind == "int8-wo-bf16"
