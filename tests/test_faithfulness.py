"""The first-load faithfulness check (engine/faithfulness.py) and the outlier checkpoints it is
judged on (dev/outliers.py), on tiny checkpoints.

The tiny models are too narrow for outliers to hurt a single layer much (a layer there is
16-32 wide); with channels 100x the rest, the schemes that quantize activations (fbgemm,
KleidiAI's 4-bit product) lose their last hidden state, which is what these tests trip on.
Every test runs on every CPU for the schemes this torch has here; the fbgemm ones skip
elsewhere (ARM), while the KleidiAI ones run everywhere (torch's reference path off ARM).
"""

from __future__ import annotations

import json
import logging

import pytest
import torch
from safetensors.torch import load_file

from wyoming_qwen3_tts.dev import outliers
from wyoming_qwen3_tts.engine import faithfulness, quantize
from wyoming_qwen3_tts.engine.decoding import Stack
from wyoming_qwen3_tts.engine.engine import Engine
from wyoming_qwen3_tts.engine.loader import load_model
from wyoming_qwen3_tts.engine.precision import Precision, detect_cpu

LOGGER = "wyoming_qwen3_tts.engine.faithfulness"
FACTOR = 100.0


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny products: a second thread costs more than it gives
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_outliers(tiny_custom_voice):
    return outliers.cached_outlier_checkpoint("custom_voice", "tiny", factor=FACTOR)


def runs_here(talker: str, predictor: str, *marks):
    why = quantize.unavailable(talker) or quantize.unavailable(predictor)
    return pytest.param(talker, predictor, id=f"{talker}/{predictor}",
                        marks=[pytest.mark.skipif(bool(why), reason=why or "-"), *marks])


# what auto picks on x86 and on a Raspberry Pi 5 (both quantize activations), and the
# weight-only int8 of x86 and of ARM
ACTIVATION_QUANTIZED = [runs_here("int8-fbgemm", "int8-fbgemm"),
                        runs_here("int8-wo-f32", "int4-kleidiai-g32")]
WEIGHT_ONLY = [runs_here("int8-wo-bf16", "int8-wo-bf16"), runs_here("int8-wo-f32", "int8-wo-f32")]


def precision(talker: str, predictor: str, auto: bool = True) -> Precision:
    return Precision(generation="int8", vocoder=torch.float32, talker=talker,
                     predictor=predictor, cpu_class=detect_cpu().cpu_class, auto=auto)


def checked(folder, talker, predictor, data_dir, auto=True):
    p = precision(talker, predictor, auto)
    tts, plan = load_model(folder, p)
    served = faithfulness.check(folder, tts.model, tts.processor, plan, p, data_dir)
    return tts, plan, served


def layer_schemes(plan) -> list[str]:
    return [layer.scheme for layer in plan.talker.layers + plan.predictor.layers]


def within_bounds(folder, tts, served) -> faithfulness.Report:
    _, report = faithfulness.measure(folder, tts.model, tts.processor, served)
    for figures in (report.talker, report.predictor):
        for r in figures.layers:
            assert r["error"] <= faithfulness.BOUNDS[faithfulness.family(r["scheme"])]
        main = faithfulness._main_scheme(served.talker if figures is report.talker
                                         else served.predictor)
        assert figures.hidden <= faithfulness.STACK_BOUNDS[faithfulness.family(main)]
    return report


def same_function(a, b) -> None:
    """Two served plans compute the same (a cached start redoes what was measured)."""
    assert layer_schemes(a) == layer_schemes(b)
    for x_plan, y_plan in ((a.talker, b.talker), (a.predictor, b.predictor)):
        x = torch.randn(1, 3, x_plan.hidden, generator=torch.Generator().manual_seed(1))
        with torch.inference_mode():
            assert torch.allclose(Stack(x_plan, 8).forward(x, 0), Stack(y_plan, 8).forward(x, 0),
                                  atol=1e-5, rtol=1e-4)


def faithfulness_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == LOGGER and r.getMessage().startswith("Faithfulness of")]


# -- the outlier checkpoints ----------------------------------------------------------------


@pytest.mark.parametrize("mlp", outliers.MLP_MODES)
def test_outliers_are_injected_where_said(tiny_custom_voice, mlp):
    plain = load_file(str(tiny_custom_voice / "model.safetensors"))
    tensors = dict(plain)
    picked = outliers.inject(tensors, factor=30.0, channels=4, mlp=mlp)
    changed = {name for name in tensors if not torch.equal(tensors[name], plain[name])}
    for name in changed:  # only the MLPs and the two final norms
        assert ".mlp.down_proj." in name or ".mlp.up_proj." in name or name in (
            "talker.model.norm.weight", "talker.code_predictor.model.norm.weight"), name
    down = "talker.model.layers.0.mlp.down_proj.weight"
    up = down.replace("down_proj", "up_proj")
    residual, inner = picked["talker-residual"], picked["talker-mlp"]
    assert 1 <= len(residual) <= max(1, plain[down].shape[0] // 16)
    ratio = tensors[down].float()[residual] / plain[down].float()[residual]
    others = [c for c in range(plain[up].shape[0]) if c not in inner]
    if mlp == "preserve":
        ratio = ratio[:, others]  # those columns were divided back
        rows = [r for r in range(plain[down].shape[0]) if r not in residual]
        assert torch.allclose(tensors[down].float()[rows][:, inner],
                              plain[down].float()[rows][:, inner] / 30, rtol=0.02)
    assert torch.allclose(ratio, torch.full_like(ratio, 30.0), rtol=0.02)
    up_ratio = tensors[up].float()[inner] / plain[up].float()[inner]
    assert torch.allclose(up_ratio, torch.full_like(up_ratio, 1.0 if mlp == "none" else 30.0),
                          rtol=0.02)
    assert torch.equal(tensors[up][others], plain[up][others])
    norm = "talker.model.norm.weight"
    assert torch.allclose(tensors[norm].float()[residual] * 30, plain[norm].float()[residual],
                          rtol=0.02)


def test_outlier_checkpoint_loads_and_is_recorded(tiny_outliers):
    info = json.loads((tiny_outliers / "outliers.json").read_text())
    assert info["factor"] == FACTOR and info["version"] == outliers.VERSION
    assert set(info["channels"]) == {"talker-residual", "talker-mlp", "predictor-residual",
                                     "predictor-mlp"}
    assert (tiny_outliers / "config.json").is_file()


@pytest.mark.parametrize("scheme", sorted(outliers.SIMULATED))
def test_simulated_kernels_are_the_kernels(scheme):
    """dev.outliers measures the ARM schemes on x86 with float32 stand-ins: same values."""
    if quantize.unavailable(scheme):
        pytest.skip(quantize.unavailable(scheme))
    torch.manual_seed(0)
    linear = torch.nn.Linear(256, 96)
    torch.nn.init.normal_(linear.weight)
    real, simulated = quantize.SCHEMES[scheme](linear), outliers.SIMULATED[scheme](linear)
    assert (real.kind, real.weight_bytes) == (simulated.kind, simulated.weight_bytes)
    x = torch.randn(1, 5, 256)
    x[..., 7] *= 30  # an outlier channel: the activations' quantization must match too
    want = real(x)
    assert float((simulated(x) - want).norm() / want.norm()) < 1e-5


# -- the check --------------------------------------------------------------------------------


@pytest.mark.parametrize("talker,predictor", ACTIVATION_QUANTIZED + WEIGHT_ONLY)
def test_plain_checkpoint_keeps_every_layer_and_caches(tiny_custom_voice, tmp_path, caplog,
                                                       monkeypatch, talker, predictor):
    caplog.set_level(logging.INFO, logger=LOGGER)
    tts, plan, served = checked(tiny_custom_voice, talker, predictor, tmp_path)
    assert layer_schemes(served) == layer_schemes(plan)  # smoothed at most: same schemes
    (line,) = faithfulness_lines(caplog)
    assert "teacher-forced" in line and "kept every layer" in line
    assert f"serving talker {talker}, code predictor {predictor}" in line
    cached = list((tmp_path / "faithfulness").glob("*.json"))
    assert len(cached) == 1 and json.loads(cached[0].read_text())["moved"] == []
    smoothed = json.loads(cached[0].read_text())["smoothed"]
    assert (served is plan) == (not smoothed)
    assert ("smoothed " in line) == bool(smoothed)

    # a later start measures nothing
    def fail(*args, **kwargs):
        raise AssertionError("measured again")

    monkeypatch.setattr(faithfulness, "measure", fail)
    caplog.clear()
    _, plan2, served2 = checked(tiny_custom_voice, talker, predictor, tmp_path)
    assert (served2 is plan2) == (not smoothed)
    same_function(served, served2)
    (line,) = faithfulness_lines(caplog)
    assert "(cached from" in line and "kept every layer" in line
    # another precision is another measurement
    with pytest.raises(AssertionError, match="measured again"):
        checked(tiny_custom_voice, "int8-wo-f32", "int8-wo-f32" if predictor != "int8-wo-f32"
                else "int4-kleidiai-g32", tmp_path)


@pytest.mark.parametrize("talker,predictor", ACTIVATION_QUANTIZED)
def test_outliers_fall_back_and_the_cache_redoes_it(tiny_outliers, tmp_path, caplog,
                                                    talker, predictor):
    caplog.set_level(logging.INFO, logger=LOGGER)
    tts, plan, served = checked(tiny_outliers, talker, predictor, tmp_path)
    assert served is not plan
    moved = [s for s, before in zip(layer_schemes(served), layer_schemes(plan), strict=True)
             if s != before]
    assert moved and all(s in ("int8-dyn32", "int8-wo-bf16", "int8-wo-f32", "float32")
                         for s in moved)
    (line,) = faithfulness_lines(caplog)
    assert "moved " in line and " -> " in line and "kept every layer" not in line
    within_bounds(tiny_outliers, tts, served)

    caplog.clear()
    tts2, _, served2 = checked(tiny_outliers, talker, predictor, tmp_path)
    assert "(cached from" in faithfulness_lines(caplog)[0]
    same_function(served, served2)  # the redone layers compute what the measured ones did


@pytest.mark.parametrize("talker,predictor", WEIGHT_ONLY)
def test_weight_only_keeps_its_layers_on_outliers(tiny_outliers, tmp_path, talker, predictor):
    _, plan, served = checked(tiny_outliers, talker, predictor, tmp_path)
    assert served is plan


@pytest.mark.parametrize("talker,predictor", ACTIVATION_QUANTIZED)
def test_an_explicit_dtype_is_kept_with_a_warning(tiny_outliers, tmp_path, caplog, talker,
                                                  predictor):
    caplog.set_level(logging.INFO, logger=LOGGER)
    _, plan, served = checked(tiny_outliers, talker, predictor, tmp_path, auto=False)
    assert layer_schemes(served) == layer_schemes(plan)  # smoothed, not moved
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(m.startswith("Out of bounds with --dtype") for m in warnings), warnings


@pytest.mark.parametrize("talker,predictor", ACTIVATION_QUANTIZED[:1])
def test_smoothed_layers_are_cached_with_their_ranges(tiny_outliers, tmp_path, caplog, talker,
                                                      predictor):
    """fbgemm on the outlier checkpoint, as asked (no fallback): layers are kept smoothed;
    a later start redoes them from the cached ranges; damaged ranges are measured again."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    _, plan, served = checked(tiny_outliers, talker, predictor, tmp_path, auto=False)
    assert served is not plan and layer_schemes(served) == layer_schemes(plan)
    assert "smoothed talker layer" in faithfulness_lines(caplog)[0]
    (ranges,) = (tmp_path / "faithfulness").glob("*.ranges.safetensors")
    caplog.clear()
    _, _, served2 = checked(tiny_outliers, talker, predictor, tmp_path, auto=False)
    assert "(cached from" in faithfulness_lines(caplog)[0]
    same_function(served, served2)

    ranges.write_bytes(b"not a safetensors file")
    caplog.clear()
    _, _, served3 = checked(tiny_outliers, talker, predictor, tmp_path, auto=False)
    assert any(r.getMessage().startswith("Ignoring the cached faithfulness result")
               for r in caplog.records)
    assert "teacher-forced" in faithfulness_lines(caplog)[0]
    same_function(served, served3)


@pytest.mark.skipif(bool(quantize.unavailable("int8-fbgemm")),
                    reason=quantize.unavailable("int8-fbgemm") or "-")
def test_a_stack_out_of_bounds_falls_back_its_worst_layers_first(tiny_outliers, monkeypatch):
    p = precision("int8-fbgemm", "int8-fbgemm")
    tts, plan = load_model(tiny_outliers, p)
    _, before = faithfulness.measure(tiny_outliers, tts.model, tts.processor, plan,
                                     smooth=True)
    errors = [r["error"] for r in before.talker.layers]
    bound = before.talker.hidden * 0.9
    monkeypatch.setitem(faithfulness.STACK_BOUNDS, "int8", bound)
    monkeypatch.setattr(faithfulness, "STACK_STEPS", len(errors))  # a layer at a time
    tts, plan = load_model(tiny_outliers, p)
    served, after = faithfulness.measure(tiny_outliers, tts.model, tts.processor, plan,
                                         smooth=True, fallback=True)
    moved = [m.layer for m in after.moved if m.what == faithfulness.TALKER and m.why == "stack"]
    assert moved, "out of the stack's bound, yet nothing moved"
    assert moved == sorted(range(len(errors)), key=lambda i: -errors[i])[:len(moved)]
    # it stops once within the bound, or when the whole stack has moved one step
    assert after.talker.hidden <= bound or len(moved) == len(errors)
    for i, layer in enumerate(served.talker.layers):
        assert layer.scheme == (quantize.safer("int8-fbgemm") if i in moved else "int8-fbgemm")


def test_float_precisions_are_not_checked(tiny_custom_voice, tmp_path):
    for dtype in ("float32", "bfloat16"):
        p = Precision(generation=dtype, vocoder=torch.float32, auto=True)
        tts, plan = load_model(tiny_custom_voice, p)
        assert faithfulness.check(tiny_custom_voice, tts.model, tts.processor, plan, p,
                                  tmp_path) is plan
    assert not (tmp_path / "faithfulness").exists()


def test_engine_auto_serves_within_bounds_on_outliers(tiny_outliers, tmp_path, caplog):
    """Whatever auto picks on this CPU, what it serves on the outlier checkpoint is within
    the bounds, and speaks."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    engine = Engine.load(str(tiny_outliers), data_dir=tmp_path, dtype="auto", threads=1)
    assert faithfulness_lines(caplog)
    within_bounds(tiny_outliers, engine.tts, engine.plan)
    pcm = b"".join(engine.stream("Hello there.", speaker="Ryan", max_frames=4, seed=1))
    assert len(pcm) == 4 * 1920 * 2


def test_describe_moves_groups_layers():
    moves = [faithfulness.Move("talker", i, "int8-fbgemm", "int8-wo-bf16", 0.2 + i / 100, 0.1)
             for i in (0, 1, 2, 5)]
    moves.append(faithfulness.Move("codec head", None, "int8-fbgemm", "int8-wo-bf16", 0.07,
                                   0.05, "heads"))
    text = faithfulness.describe_moves(moves)
    assert text == ("moved talker layers 0-2, 5 int8-fbgemm -> int8-wo-bf16 (errors up to "
                    "0.2500 > 0.1); codec head int8-fbgemm -> int8-wo-bf16 (error 0.0700 > "
                    "0.05)")
    assert faithfulness.describe_moves([]) == "kept every layer"
