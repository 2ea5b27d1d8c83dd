"""Activation smoothing (engine/smoothing.py): exact in float, and what it is for: a
quantized product whose input has outlier channels loses less once they are smoothed."""

from __future__ import annotations

import pytest
import torch

from wyoming_qwen3_tts.engine import faithfulness, quantize, smoothing
from wyoming_qwen3_tts.engine.decoding import Stack
from wyoming_qwen3_tts.engine.loader import load_model
from wyoming_qwen3_tts.engine.precision import Precision

OUTLIERS = [3, 7, 11]  # input channels made 30x the others


def with_outliers(shape, generator) -> torch.Tensor:
    x = torch.randn(*shape, generator=generator)
    x[..., OUTLIERS] *= 30
    return x


@pytest.fixture(scope="module")
def float_model(tiny_custom_voice):
    tts, plan = load_model(tiny_custom_voice, Precision(generation="float32",
                                                        vocoder=torch.float32))
    return tiny_custom_voice, tts.model.talker, plan


def layer_zero(float_model):
    folder, talker, _ = float_model
    weights = faithfulness._Weights(folder)
    return faithfulness.float_layer(weights, "talker.model.layers.0", talker.model.layers[0])


@pytest.mark.parametrize("alpha", smoothing.ALPHAS)
def test_a_smoothed_layer_is_the_same_function(float_model, alpha):
    _, _, plan = float_model
    generator = torch.Generator().manual_seed(0)
    hidden, inter = plan.talker.hidden, plan.talker.intermediate
    ranges = smoothing.Ranges(qkv=with_outliers((hidden,), generator).abs(),
                              gate_up=with_outliers((hidden,), generator).abs(),
                              down=with_outliers((inter,), generator).abs())
    plain = quantize._layer(layer_zero(float_model), "float32")
    smoothed = quantize._layer(smoothing.smoothed(layer_zero(float_model), ranges, alpha),
                               "float32")
    assert not torch.equal(smoothed.input_norm.weight, plain.input_norm.weight)
    stack = Stack(plan.talker, initial_length=8)
    x = with_outliers((1, 5, hidden), generator)
    with torch.inference_mode():
        want = stack.layer(0, plain, x, 0, *stack.rope(0, 5))
        got = stack.layer(0, smoothed, x, 0, *stack.rope(0, 5))
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_the_recorder_sees_each_products_input(float_model):
    _, _, plan = float_model
    layer = quantize._layer(layer_zero(float_model), "float32")
    stack = Stack(plan.talker, initial_length=8)
    x = with_outliers((1, 6, plan.talker.hidden), torch.Generator().manual_seed(1))
    recorder = smoothing.RangeRecorder()
    with torch.inference_mode():
        y = stack.layer(0, recorder.layer(layer), x, 0, *stack.rope(0, 6))
        assert torch.equal(y, stack.layer(0, layer, x, 0, *stack.rope(0, 6)))
    ranges = recorder.ranges()
    torch.testing.assert_close(ranges.qkv, layer.input_norm(x).abs().amax(dim=(0, 1)))
    assert ranges.gate_up.shape == (plan.talker.hidden,)
    assert ranges.down.shape == (plan.talker.intermediate,)
    assert bool((ranges.down >= 0).all())


# fbgemm's error is its activations' (halved at least); 4-bit weights keep most of theirs
@pytest.mark.parametrize("scheme,gain", [("int8-fbgemm", 0.5), ("int4-kleidiai-g32", 0.8)])
@torch.inference_mode()
def test_smoothing_spares_quantized_activations_their_outliers(scheme, gain):
    if quantize.unavailable(scheme):
        pytest.skip(quantize.unavailable(scheme))
    generator = torch.Generator().manual_seed(2)
    linear = torch.nn.Linear(256, 128, bias=False)
    torch.nn.init.normal_(linear.weight, generator=generator)
    x = with_outliers((64, 256), generator)
    want = x @ linear.weight.T

    def error(product, inputs) -> float:
        return float((product(inputs) - want).norm() / want.norm())

    plain = error(quantize.SCHEMES[scheme](linear), x)
    s = smoothing.scales(x.abs().amax(dim=0), [linear.weight], 0.5)
    folded = torch.nn.Linear(256, 128, bias=False)
    folded.weight = torch.nn.Parameter(linear.weight * s[None, :], requires_grad=False)
    smoothed = error(quantize.SCHEMES[scheme](folded), x / s)
    assert smoothed < plain * gain, (plain, smoothed)


def test_dead_channels_keep_their_scale():
    weight = torch.randn(8, 4)
    weight[:, 2] = 0
    s = smoothing.scales(torch.tensor([1.0, 0.0, 5.0, 2.0]), [weight], 0.5)
    assert s[1] == 1 and s[2] == 1 and bool(torch.isfinite(s).all())


def test_which_schemes_are_smoothed():
    assert smoothing.helps("int8-fbgemm") and smoothing.helps("int4-kleidiai-g32")
    assert smoothing.helps("int4-tinygemm-g32")
    for scheme in ("float32", "bfloat16", "int8-wo-bf16", "int8-wo-f32"):
        assert not smoothing.helps(scheme)


def test_describe_smoothing_groups_layers():
    smoothed = [faithfulness.Smoothed("talker", i, "int8-fbgemm", 0.5) for i in (0, 1, 2, 4)]
    smoothed += [faithfulness.Smoothed("talker", 3, "int8-fbgemm", 0.75),
                 faithfulness.Smoothed("code predictor", 0, "int8-fbgemm", 0.75)]
    assert faithfulness.describe_smoothing(smoothed) == (
        "smoothed talker layers 0-2, 4 (alpha 0.5), 3 (alpha 0.75); code predictor layer 0 "
        "(alpha 0.75)")
    assert faithfulness.describe([], smoothed).startswith("kept every layer; smoothed talker")
    assert faithfulness.describe_smoothing([]) == ""
