"""Benchmark: the official qwen-tts path against our engine, in one process, one run.

    python -m wyoming_qwen3_tts.dev.bench            # 0.6B CustomVoice, every precision
    python -m wyoming_qwen3_tts.dev.bench --quick    # fewer frames and runs, < 5 min
    python -m wyoming_qwen3_tts.dev.bench --size 1.7b --type custom_voice

Checkpoints are random weights at the published geometry, built offline by devmodel into
.cache/devmodels/ (nothing is downloaded): the compute is real, the audio is noise.  Frames are
forced (EOS disabled) so every configuration makes the same amount of audio.  Results are
printed and written to BENCHMARKS.md (a Markdown table) and benchmarks/results.json.

Figures are ratios from the same run (speed-up over the official path) because these machines
are shared and noisy; absolute times move with the neighbours.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import os
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import torch
import torch.nn.functional as F

from .. import __version__
from ..contract import StreamStats
from ..engine.engine import Engine
from ..engine.precision import cpu_flags, physical_cores, set_threads
from ..engine.vocoder import StreamingVocoder

_LOGGER = logging.getLogger("bench")
REPO = Path(__file__).resolve().parents[2]
TEXT = "The kitchen lights are now off, and the front door is locked."  # 60 characters


# -- measuring helpers ---------------------------------------------------------------------
class PeakRSS:
    """Samples this process's resident memory in a thread; `peak` is the maximum seen."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        proc = psutil.Process()
        while not self._stop.is_set():
            self.peak = max(self.peak, proc.memory_info().rss)
            self._stop.wait(self.interval)

    def mark(self) -> int:
        """The peak so far; from now on the peak is measured afresh (e.g. after loading)."""
        peak, self.peak = self.peak, psutil.Process().memory_info().rss
        return peak

    def __enter__(self) -> PeakRSS:
        self.peak = psutil.Process().memory_info().rss
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


class Timers:
    """Accumulates wall time spent in wrapped callables, by name."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    def wrap(self, name: str, fn):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
                self.calls[name] = self.calls.get(name, 0) + 1

        return timed


def machine_bandwidth_gbs(threads: int) -> float:
    """Memory read bandwidth: best of 5 sums over a 1 GiB float32 tensor."""
    torch.set_num_threads(threads)
    data = torch.ones(256 * 1024 * 1024)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        data.sum()
        best = min(best, time.perf_counter() - start)
    return data.numel() * 4 / best / 1e9


def machine_info(threads: int) -> dict:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    interesting = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8",
                   "avx_vnni", "asimd", "bf16", "i8mm")
    return {
        "cpu": model,
        "flags": [f for f in interesting if f in cpu_flags()],
        "logical_cpus": os.cpu_count(),
        "physical_cores": physical_cores(),
        "threads": threads,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "torch": torch.__version__,
        "wyoming_qwen3_tts": __version__,
        "read_bandwidth_gbs": round(machine_bandwidth_gbs(threads), 1),
    }


def linear_bytes(module) -> int:
    """Bytes of weights one call of `module` reads: its linear layers (int8 or float)."""
    total = 0
    for sub in module.modules():
        if isinstance(sub, torch.nn.Linear):
            total += sub.weight.numel() * sub.weight.element_size()
        elif hasattr(sub, "_packed_params") and hasattr(sub, "weight"):  # quantized linear
            total += sub.weight().numel() * 1
    return total


def weight_bytes_per_frame(engine: Engine) -> int:
    """The decoder stacks' products (the talker once, the code predictor and one of its heads
    15 times: quantize.ModelPlan), the codec head and the predictor's input projection."""
    talker = engine.model.talker
    return engine.plan.weight_bytes_per_frame + linear_bytes(talker.codec_head) \
        + linear_bytes(talker.code_predictor.small_to_mtp_projection)


def product_ms_per_frame(engine: Engine, rounds: int = 7) -> float:
    """The matrix products of one frame timed on their own, on a single token of random
    input (the talker's layers once, the code predictor's layers and one head per pass, 15
    passes, the codec head): what a frame would cost with nothing around its products.  The
    rest of the generation time (attention, norms, the rotary embedding, sampling, embedding
    sums, copies, Python) is the frame's non-product time."""
    from ..engine.quantize import product_of

    plan, gen = engine.plan, engine.generator
    # in the loop's order, so no weight is re-read from cache that the loop reads from memory:
    # the talker's layers, its head, then per pass the projection, the code predictor's
    # layers and that pass's head
    calls = [p for layer in plan.talker.layers for p in layer.products] + [gen._codec_head]
    projection = []
    with contextlib.suppress(TypeError):  # an identity projection (0.6B) is no product
        projection = [product_of(engine.model.talker.code_predictor.small_to_mtp_projection)]
    for head in plan.predictor_heads:
        calls += projection + [p for layer in plan.predictor.layers for p in layer.products]
        calls.append(head)
    inputs: dict[tuple[int, torch.dtype], torch.Tensor] = {}
    for product in calls:
        key = (product.in_features, plan.talker.activations)
        inputs.setdefault(key, torch.randn(1, 1, key[0]).to(key[1]))
    with torch.inference_mode():
        def one_frame() -> float:
            start = time.perf_counter()
            for product in calls:
                product(inputs[(product.in_features, plan.talker.activations)])
            return time.perf_counter() - start

        one_frame()  # warm-up
        return 1000 * float(np.median([one_frame() for _ in range(rounds)]))


# -- runs --------------------------------------------------------------------------------
REFERENCE_TEXT = "This is how my own voice sounds on a quiet day."


def reference_clip(seconds: float = 5.0, rate: int = 24000) -> np.ndarray:
    """A voice-like test signal (harmonics with a wandering pitch) for the clone path."""
    t = np.arange(int(seconds * rate)) / rate
    pitch = 140 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    wav = sum(np.sin(k * phase) / k for k in range(1, 8)) * (0.5 + 0.5 * np.sin(3 * t) ** 2)
    return (0.3 * wav / np.abs(wav).max()).astype(np.float32)

def run_official(folder: Path, dtype: torch.dtype, frames: int, repeats: int) -> dict:
    """The library's own path: generate_custom_voice, whole waveform at the end."""
    from ..engine.qwen_import import import_qwen_tts

    qwen_tts = import_qwen_tts()
    with PeakRSS() as rss:
        start = time.perf_counter()
        tts = qwen_tts.Qwen3TTSModel.from_pretrained(str(folder), dtype=dtype)
        # from_pretrained applies dtype= to the speech tokenizer too; the decoder must stay
        # float32 on CPUs (bfloat16 convolutions are 60x slower without native bf16)
        tts.model.speech_tokenizer.model.to(torch.float32)
        load_s = time.perf_counter() - start
        load_peak = rss.mark()
        never = tts.model.config.talker_config.vocab_size  # an EOS id no logit can produce
        kwargs = dict(language="English", max_new_tokens=frames + 1, eos_token_id=never)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            if tts.model.tts_model_type == "base":  # clone, the prompt made from the clip
                wavs, rate = tts.generate_voice_clone(
                    TEXT, ref_audio=(reference_clip(), 24000), ref_text=REFERENCE_TEXT, **kwargs)
            else:
                speaker = next(iter(tts.model.config.talker_config.spk_id))
                wavs, rate = tts.generate_custom_voice(TEXT, speaker=speaker, **kwargs)
            times.append(time.perf_counter() - start)
    audio_s = len(wavs[0]) / rate
    total = min(times)
    result = {
        "name": f"official qwen-tts ({str(dtype).removeprefix('torch.')})",
        "frames": round(audio_s / 0.08),
        "load_s": round(load_s, 1),
        "total_s": round(total, 2),
        "first_audio_s": round(total, 2),  # no streaming: everything arrives at the end
        "rtf": round(total / audio_s, 2),
        "ms_per_frame": round(1000 * total / (audio_s / 0.08), 1),
        "peak_rss_gb": round(max(load_peak, rss.peak) / 1e9, 2),
        "serving_rss_gb": round(rss.peak / 1e9, 2),
    }
    del tts
    gc.collect()
    return result


@contextmanager
def timed_engine(engine: Engine, timers: Timers):
    """Time the talker, the code predictor and the vocoder of one engine."""
    gen = engine.generator
    stack_forward = gen.talker_stack.forward

    def talker_forward(x, pos):
        name = "prefill" if x.shape[1] > 1 else "talker"
        return timers.wrap(name, stack_forward)(x, pos)

    # instance attributes shadow the methods while timed; deleting them restores the methods
    setattr(gen.talker_stack, "forward", talker_forward)  # noqa: B010
    setattr(gen, "_other_codes", timers.wrap("code_predictor", gen._other_codes))  # noqa: B010
    decode = StreamingVocoder._decode
    setattr(StreamingVocoder, "_decode", timers.wrap("vocoder", decode))  # noqa: B010
    try:
        yield
    finally:
        setattr(StreamingVocoder, "_decode", decode)  # noqa: B010
        del gen.talker_stack.forward
        del gen._other_codes


TORCH_OPS = "-torch-ops"  # e.g. "int8-torch-ops": int8 without the fused kernels (A/B)
OVERLAP = "-overlap"  # e.g. "auto-overlap": generation beside the vocoder (engine/overlap.py)
DYN32 = "-dyn32"  # e.g. "int8-dyn32": int8 as int8_products.c's kernel on every CPU (A/B, x86)
DEFAULT_DTYPES = f"float32,bfloat16,int8{TORCH_OPS},int8,auto"
DEFAULT_OFFICIAL = "float32,bfloat16"
AVX2_CAP = "@avx2"  # e.g. "auto@avx2": this machine capped to AVX2 (peers.avx2_env), own process


def run_ours(folder: Path, dtype: str, frames: int, repeats: int) -> dict:
    capped = dtype.endswith(AVX2_CAP)  # the parent set the environment (peers.avx2_env)
    dtype = dtype.removesuffix(AVX2_CAP)
    overlapped = dtype.endswith(OVERLAP)
    if overlapped:  # this process only, like TORCH_OPS
        from ..engine import overlap

        os.environ[overlap.ENV] = "1"
        dtype = dtype.removesuffix(OVERLAP)
    if dtype.endswith(DYN32):  # this process only: int8 means int8-dyn32 on every class
        from ..engine import precision as precision_module

        for klass in precision_module.WITHOUT_KERNELS:
            precision_module._INT8[klass] = "int8-dyn32"
        dtype = dtype.removesuffix(DYN32)
    torch_ops = dtype.endswith(TORCH_OPS)
    if torch_ops:  # this process only: each configuration runs in its own
        os.environ["QWEN3_TTS_KERNELS"] = "0"
        dtype = dtype.removesuffix(TORCH_OPS)
    with PeakRSS() as rss:
        start = time.perf_counter()
        engine = Engine.load(str(folder), data_dir=REPO / ".cache", dtype=dtype)
        load_s = time.perf_counter() - start
        engine.generator.eos = -1  # never stop early: every run makes `frames` frames
        voice: dict[str, Any] = {"speaker": engine.speakers[0]} if engine.speakers else {}
        if engine.model_type == "base":  # like a cloned voice: its prompt is made once, cached
            from ..engine.cloning import compute_clone_prompt

            voice = {"clone": compute_clone_prompt(engine.model, reference_clip(),
                                                   REFERENCE_TEXT)}
        elif engine.model_type == "voice_design":
            voice = {"instruct": "A calm, warm voice."}
        for _ in engine.stream(TEXT, language="english", max_frames=4, **voice):
            pass  # warm-up, as the server does at start
        load_peak = rss.mark()
        best: tuple[Timers, StreamStats] | None = None
        for _ in range(repeats):
            timers, stats = Timers(), StreamStats()
            with timed_engine(engine, timers):
                for _ in engine.stream(TEXT, language="english", stats=stats,
                                       max_frames=frames, **voice):
                    pass
            if best is None or stats.total_seconds < best[1].total_seconds:
                best = (timers, stats)
    assert best is not None, "repeats must be at least 1"
    products_ms = product_ms_per_frame(engine)
    timers, stats = best
    n = stats.frames
    per_frame = {k: 1000 * v / n for k, v in timers.seconds.items()}
    gen_ms = per_frame.get("talker", 0) + per_frame.get("code_predictor", 0)
    bytes_per_frame = weight_bytes_per_frame(engine)
    result = {
        "name": f"ours ({engine.precision.describe()}"
        + (", fused kernels" if engine.generator.talker_stack._fused else "")
        + (", torch ops only" if torch_ops else "")
        + (", vocoder beside generation" if overlapped else "")
        + (f"; served after the first-load check: talker {engine.plan.talker.scheme}, code "
           f"predictor {engine.plan.predictor.scheme}"
           if (engine.plan.talker.scheme, engine.plan.predictor.scheme)
           != (engine.precision.talker, engine.precision.predictor) else "") + ")"
        + (" [auto]" if dtype == "auto" else "") + (" [AVX2 cap]" if capped else ""),
        "frames": n,
        "load_s": round(load_s, 1),
        "total_s": round(stats.total_seconds, 2),
        "first_audio_s": round(stats.first_audio_seconds or 0.0, 2),
        "prefill_s": round(timers.seconds.get("prefill", 0), 3),
        "rtf": round(stats.total_seconds / stats.audio_seconds, 2),
        "ms_per_frame": round(1000 * stats.total_seconds / n, 1),
        "talker_ms": round(per_frame.get("talker", 0), 1),
        "code_predictor_ms": round(per_frame.get("code_predictor", 0), 1),
        "vocoder_ms": round(per_frame.get("vocoder", 0), 1),
        "products_ms": round(products_ms, 1),
        "non_product_ms": round(gen_ms - products_ms, 1),
        "weights_mb_per_frame": round(bytes_per_frame / 1e6),
        "achieved_gbs": round(bytes_per_frame / (gen_ms / 1000) / 1e9, 1) if gen_ms else None,
        "peak_rss_gb": round(max(load_peak, rss.peak) / 1e9, 2),
        "serving_rss_gb": round(rss.peak / 1e9, 2),
    }
    del engine
    gc.collect()
    return result


# -- quality guard -------------------------------------------------------------------------
def projection_errors(folder: Path, dtype: str) -> dict:
    """Relative error against float32 of each layer's q/k/v product (after its input norm)
    and MLP (after its post-attention norm), and of the heads, at full-size geometry, on
    real activations (the hidden states of a prompt).  With the norm and the whole MLP, a
    layer smoothed by the first-load check (engine/smoothing.py: scales folded into the norm
    weights and into up_proj's rows) is the same function as float32's, so it compares."""
    ref = Engine.load(str(folder), data_dir=REPO / ".cache", dtype="float32")
    test = Engine.load(str(folder), data_dir=REPO / ".cache", dtype=dtype)
    prompt = ref.prompts.build(TEXT, language="english", speaker=ref.speakers[0])
    x = prompt.embeds[0]  # [T, hidden] real inputs of the first layer
    pairs = [(ref.model.talker.codec_head, test.model.talker.codec_head),
             *zip(ref.plan.predictor_heads, test.plan.predictor_heads, strict=True)]

    def qkv(layer):
        return _Fn(lambda h: layer.qkv(layer.input_norm(h)), layer.qkv.in_features)

    def mlp(layer):
        def run(h):
            gate, up = layer.gate_up(layer.post_norm(h)).chunk(2, dim=-1)
            return layer.down(F.silu(gate) * up)

        return _Fn(run, layer.gate_up.in_features)

    for stack in ("talker", "predictor"):
        for a, b in zip(getattr(ref.plan, stack).layers, getattr(test.plan, stack).layers,
                        strict=True):
            pairs += [(qkv(a), qkv(b)), (mlp(a), mlp(b))]
    errors = []
    with torch.inference_mode():
        for want_fn, got_fn in pairs:
            if getattr(want_fn, "in_features", None) != x.shape[1]:
                continue
            want = want_fn(x).float()
            got = got_fn(x.to(test.precision.activations)).float()
            errors.append(float((got - want).norm() / want.norm()))
    del ref, test
    gc.collect()
    return {"layers": len(errors), "measures": "norm+qkv, norm+mlp, heads",
            "mean_rel_error": round(float(np.mean(errors)), 4),
            "max_rel_error": round(float(np.max(errors)), 4)}


@dataclass
class _Fn:
    fn: Callable[[torch.Tensor], torch.Tensor]
    in_features: int

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


def greedy_agreement(dtype: str, frames: int = 20) -> dict:
    """How many of the first greedy frames (all 16 codes) a precision agrees on with float32,
    on the tiny model (full-size random weights have no meaningful codes to agree on)."""
    from .checkpoints import cached_checkpoint

    folder = cached_checkpoint("custom_voice", "tiny")
    codes = {}
    for name in ("float32", dtype):
        engine = Engine.load(str(folder), data_dir=REPO / ".cache", dtype=name)
        engine.sampling.do_sample = engine.sampling.subtalker_dosample = False
        _, gen = engine.frames(TEXT, speaker=engine.speakers[0], language="english",
                               max_frames=frames)
        codes[name] = torch.stack(list(gen))
    same = (codes["float32"] == codes[dtype]).all(dim=1)
    first_diff = int(same.logical_not().nonzero()[0]) if not same.all() else frames
    return {"frames": frames, "identical_leading_frames": first_diff,
            "codes_agreeing": round(float((codes["float32"] == codes[dtype]).float().mean()), 3)}


# -- report --------------------------------------------------------------------------------
def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [
        f"## {report['size']} {report['type']}" + (" (quick)" if report["quick"] else "")
        + ("" if report["runs"] else ": analyses without timed rows")
        + (f" (outlier rows {report['outlier_rows']})" if report.get("outlier_rows") else "")
        + (f", on its outlier variant ({report['outlier_variant']})"
           if report.get("outlier_variant") else ""),
        "",
        "Produced by `python -m wyoming_qwen3_tts.dev.bench"
        + (" --quick" if report["quick"] else "") + f" --size {report['size']} "
        f"--type {report['type']}"
        + (f" --frames {report['frames']}" if report["runs"] and report.get("frames")
           != (25 if report["quick"] else 125) else "")
        + (" --server" if report.get("server") else "")
        + ("" if report["runs"] else " --dtypes '' --official '' --no-quality")
        + (f" --dtypes {report['dtypes']}" if report["runs"] and report.get("dtypes")
           not in (None, DEFAULT_DTYPES) else "")
        + (f" --official {report['official']}" if report["runs"] and report.get("official")
           not in (None, DEFAULT_OFFICIAL) else "")
        + (f" --avx2 {report['avx2']}" if report.get("avx2") else "")
        + (" --under-load" if report.get("under_load") else "")
        + (" --peers" if report.get("peers") else "")
        + (" --vocoder" if report.get("vocoder") else "")
        + (" --outliers" if report.get("outliers") else "")
        + (f" --outlier-variant {report['outlier_variant']}" if report.get("outlier_variant")
           else "")
        + (f" --outlier-rows '{report['outlier_rows']}'" if report.get("outlier_rows") else "")
        + (f" --arm '{report['arm_dtypes']}'" if report.get("arm") else "") + "` "
        f"on {report['date']}. Random weights at the published {report['size']} "
        f"{report['type']} geometry (compute is real, audio is noise), {report['frames']} frames "
        f"({report['frames'] * 0.08:.1f} s of audio) forced for every row, text of "
        f"{len(TEXT)} characters, best of {report['repeats']} run(s).",
        "",
        f"Machine: {m['cpu']}, {m['threads']} threads ({m['physical_cores']} physical cores), "
        f"{m['memory_gb']} GiB, flags: {' '.join(m['flags'])}; torch {m['torch']}; measured "
        f"memory read bandwidth {m['read_bandwidth_gbs']} GB/s.",
        "",
        "RTF = compute time / audio time (lower is better; below 1 is faster than real time). "
        "First audio = time from the request to the first PCM chunk. ms/frame: one frame is "
        "80 ms of audio. Achieved GB/s = bytes of talker and code-predictor weights read per "
        "frame / generation time per frame (the decode steps are memory-bound: compare with "
        "the machine's bandwidth). Peak RSS covers loading and serving (it counts the "
        "checkpoint file's mapped pages while loading); serving RSS is the peak after loading "
        "and warm-up, while speaking. Products alone: the frame's matrix products timed on "
        "their own on one token (talker once, code predictor 15 passes, heads); non-product "
        "= talker + code predictor time - that (attention, norms, sampling, embeddings, "
        "copies, Python).",
        "",
        "| path | RTF | speed-up | first audio s | ms/frame | talker ms | code predictor ms "
        "| vocoder ms | products alone ms | non-product ms | prefill s | weights MB/frame "
        "| achieved GB/s | peak RSS GB | serving RSS GB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    if not report["runs"]:  # --dtypes '' --official '': only the sections below
        del lines[-4:]
    for r in report["runs"]:
        base = report["runs"][0]["total_s"]
        lines.append(
            f"| {r['name']} | {r['rtf']} | {base / r['total_s']:.2f}x | {r['first_audio_s']} "
            f"| {r['ms_per_frame']} | {r.get('talker_ms', '')} | {r.get('code_predictor_ms', '')} "
            f"| {r.get('vocoder_ms', '')} | {r.get('products_ms', '')} "
            f"| {r.get('non_product_ms', '')} | {r.get('prefill_s', '')} "
            f"| {r.get('weights_mb_per_frame', '')} | {r.get('achieved_gbs', '')} "
            f"| {r['peak_rss_gb']} | {r.get('serving_rss_gb', '')} |"
        )
    if report.get("quality"):
        lines += [
            "",
            "### Quality guard (against float32)",
            "",
            ("Relative error against float32 of every decoder layer's q/k/v product after its "
             "input norm and of its MLP after its post-attention norm (so that layers the "
             "first-load check smoothed compare as the functions they are), and of the heads"
             if any(q.get("projections", {}).get("measures")
                    for q in report.get("quality", {}).values())
             else "Relative error of every talker linear layer's output against float32")
            + ", on the real "
            "hidden states of a prompt at full-size geometry; and greedy codes of the first "
            "frames on the tiny model. Random tiny weights give nearly tied logits, so one "
            "rounding flips a code and the frames drift apart: that column shows the check "
            "runs, not how real weights (with their outlier channels) will sound.",
            "",
            "| precision | linear layers checked | mean relative error | max relative error "
            "| identical greedy frames (tiny model) | codes agreeing |",
            "|---|---|---|---|---|---|",
        ]
        for dtype, q in report["quality"].items():
            p, g = q["projections"], q["greedy"]
            lines.append(f"| {dtype} | {p['layers']} | {p['mean_rel_error']} "
                         f"| {p['max_rel_error']} | {g['identical_leading_frames']} of "
                         f"{g['frames']} | {g['codes_agreeing']} |")
    if any(r["name"].endswith("[AVX2 cap]") for r in report["runs"]):
        from .peers import AVX2_NOTE

        lines += ["", AVX2_NOTE]
    if report.get("vocoder"):
        from .vocoder_runtimes import markdown as vocoder_markdown

        lines += vocoder_markdown(report["vocoder"])
    if report.get("under_load") or report.get("peers"):
        from . import peers

        if report.get("under_load"):
            lines += peers.markdown_under_load(report["under_load"])
        if report.get("peers"):
            lines += peers.markdown_peers(report["peers"])
    if report.get("outliers"):
        from .outliers import markdown_outliers

        lines += markdown_outliers(report["outliers"])
    if report.get("arm"):
        from .bench_arm import markdown as arm_markdown

        lines += arm_markdown(report["arm"])
    if report.get("server"):
        lines += ["", "### Through the Wyoming server (precision auto)", "",
                  "| mode | first audio chunk s | total s | audio s | RTF |",
                  "|---|---|---|---|---|"]
        for s in report["server"]:
            lines.append(f"| {s['mode']} | {s['first_audio_s']} | {s['total_s']} "
                         f"| {s['audio_s']} | {s['rtf']} |")
    return "\n".join(lines)


HEADER = """# Benchmarks

Written by `python -m wyoming_qwen3_tts.dev.bench` (README.md, section Benchmarks, says how to
reproduce it). Each section is one run of the command: the official `qwen-tts` path and this
engine side by side, on one machine, in one run. Compare rows within a section; a later run
of the same size and type replaces its section.
"""


def write_reports(md_path: Path, json_path: Path, report: dict) -> str:
    """Add or replace this run's section in BENCHMARKS.md and results.json."""
    key = (f"{report['size']}-{report['type']}" + ("-quick" if report["quick"] else "")
           + ("" if report["runs"] else "-analyses")
           + ("-outlier-rows-" + report["outlier_rows"] if report.get("outlier_rows") else "")
           + ("-outliers-" + report["outlier_variant"] if report.get("outlier_variant")
              else ""))
    results = json.loads(json_path.read_text()) if json_path.is_file() else {}
    if "runs" in results:  # a single report from an older layout
        results = {}
    results[key] = report
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    sections = [markdown(results[k]) for k in sorted(results)]
    text = HEADER + "\n" + "\n\n".join(sections) + "\n"
    md_path.write_text(text, encoding="utf-8")
    return markdown(report)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m wyoming_qwen3_tts.dev.bench")
    parser.add_argument("--size", default="0.6b", choices=["0.6b", "1.7b", "tiny"])
    parser.add_argument("--type", default="custom_voice")
    parser.add_argument("--quick", action="store_true", help="fewer frames and runs (< 5 min)")
    parser.add_argument("--frames", type=int, help="frames per run (default 125, quick 25)")
    parser.add_argument("--dtypes", default=DEFAULT_DTYPES,
                        help=f"our precisions to run; int8{TORCH_OPS} = int8 without the "
                        f"compiled kernels, int8{DYN32} = int8 through int8_products.c's "
                        f"kernel (x86's int8 is fbgemm), "
                        f"auto{OVERLAP} = auto with generation beside the vocoder")
    parser.add_argument("--official", default=DEFAULT_OFFICIAL,
                        help="dtypes for the official path ('' to skip)")
    parser.add_argument("--threads", type=int, default=0, help="0 = all physical cores")
    parser.add_argument("--no-quality", action="store_true")
    parser.add_argument("--server", action="store_true",
                        help="also measure through the Wyoming server (see bench_server)")
    parser.add_argument("--avx2", default="",
                        help="also these precisions with the machine capped to AVX2 "
                        "(torch, fbgemm, MKL, oneDNN, fused kernels for Haswell), e.g. auto")
    parser.add_argument("--under-load", action="store_true",
                        help="also the under-load section (busy neighbour processes)")
    parser.add_argument("--peers", action="store_true",
                        help="also other CPU engines on the same checkpoint (vox-tts)")
    parser.add_argument("--vocoder", action="store_true",
                        help="also the vocoder's step under other runtimes and torch options "
                        "(vocoder_runtimes; with the AVX2 cap too)")
    parser.add_argument("--outliers", action="store_true",
                        help="also the outlier-safety table (dev.outliers: Qwen-like outlier "
                             "variants of the checkpoint, every scheme against float32)")
    parser.add_argument("--outlier-variant", choices=("amplify", "preserve"),
                        help="time the rows on this outlier variant of the checkpoint "
                             "(dev.outliers, 30x, 4 channels) instead: what the first-load "
                             "check makes of it is what runs")
    parser.add_argument("--outlier-rows", default="",
                        help="only the outlier table's rows whose labels start with one of "
                             "these (comma-separated), e.g. 'control,x86 int8 (auto'")
    parser.add_argument("--arm", default="",
                        help="also the aarch64 section: these --dtype names counted emulated "
                             "(script/aarch64; needs root; slow) on a Cortex-A76, or per CPU "
                             "model: 'a76:int4,int8;a72:int8'")
    parser.add_argument("--arm-counts", nargs="+", metavar="[CPU=]FILE",
                        help="count_frame.py output saved before (per CPU model; a bare file "
                             "is the A76's), instead of counting again")
    parser.add_argument("--rounds", type=int, help="interleaved rounds of those sections")
    parser.add_argument("--run", help=argparse.SUPPRESS)  # one configuration, in a subprocess
    parser.add_argument("--repeats", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(REPO / "BENCHMARKS.md"))
    parser.add_argument("--json", default=str(REPO / "benchmarks" / "results.json"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    frames = args.frames or (25 if args.quick else 125)
    repeats = args.repeats or (1 if args.quick else 2)
    threads, _ = set_threads(args.threads)
    from .checkpoints import BUILDER_VERSION, build_checkpoint

    folder = REPO / ".cache" / "devmodels" / f"{args.size}-{args.type}-v{BUILDER_VERSION}"
    if args.outlier_variant:
        from .outliers import cached_outlier_checkpoint

        if not folder.is_dir():
            build_checkpoint(folder, args.type, args.size)
        folder = cached_outlier_checkpoint(args.type, args.size, mlp=args.outlier_variant)
    if args.run:  # one configuration: print its result as the last line
        path, dtype = args.run.split(":")
        if path == "official":
            result = run_official(folder, getattr(torch, dtype), frames, repeats)
        else:
            result = run_ours(folder, dtype, frames, repeats)
        print(json.dumps(result))
        return
    if not folder.is_dir():
        _LOGGER.info("Building %s (random weights, offline)", folder)
        build_checkpoint(folder, args.type, args.size)

    report = {"date": time.strftime("%Y-%m-%d"), "size": args.size, "type": args.type,
              "frames": frames, "repeats": repeats, "quick": args.quick,
              "machine": machine_info(threads), "runs": [], "quality": {},
              "avx2": args.avx2, "dtypes": args.dtypes, "official": args.official,
              "outlier_variant": args.outlier_variant}
    official = [d for d in args.official.split(",") if d]
    if args.quick:
        official = official[:1]
    specs = [f"official:{d}" for d in official] + [
        f"ours:{d}" for d in args.dtypes.split(",") if d] + [
        f"ours:{d}{AVX2_CAP}" for d in args.avx2.split(",") if d]
    for spec in specs:
        # each configuration in a process of its own: peak RSS is its own, nothing is shared
        _LOGGER.info("Running %s", spec)
        cmd = [sys.executable, "-m", "wyoming_qwen3_tts.dev.bench", "--run", spec, "--size",
               args.size, "--type", args.type, "--frames", str(frames), "--repeats",
               str(repeats), "--threads", str(threads)] + (
                   ["--outlier-variant", args.outlier_variant] if args.outlier_variant else [])
        env = None
        if spec.endswith(AVX2_CAP):
            from .peers import avx2_env

            env = {**os.environ, **avx2_env()}
        done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True, env=env)
        report["runs"].append(json.loads(done.stdout.strip().splitlines()[-1]))
        _LOGGER.info("%s", report["runs"][-1])
    if not args.no_quality and args.type == "custom_voice":  # same layers in every type
        for dtype in ("bfloat16", "int8"):
            _LOGGER.info("Quality guard, %s", dtype)
            report["quality"][dtype] = {"projections": projection_errors(folder, dtype),
                                        "greedy": greedy_agreement(dtype)}
    rounds = args.rounds or (3 if args.quick else 5)
    if args.vocoder:
        from .peers import avx2_env

        report["vocoder"] = []
        for label, extra in (("native", {}), ("AVX2 cap", avx2_env())):
            for t in sorted({1, threads}):
                done = subprocess.run(
                    [sys.executable, "-m", "wyoming_qwen3_tts.dev.vocoder_runtimes", "--size",
                     args.size, "--type", args.type, "--threads", str(t), "--label", label,
                     "--rounds", str(max(rounds, 5))],
                    stdout=subprocess.PIPE, text=True, check=True, env={**os.environ, **extra})
                report["vocoder"].append(json.loads(done.stdout.strip().splitlines()[-1]))
    if args.under_load:
        from .peers import under_load

        report["under_load"] = under_load(frames, rounds, threads, args.size, args.type)
    if args.peers:
        from .peers import against_peers

        report["peers"] = against_peers(frames, rounds, args.size, args.type)
    if args.outliers:
        from .outliers import ROWS, outlier_table

        prefixes = [p.strip() for p in args.outlier_rows.split(",") if p.strip()]
        rows = [r for r in ROWS if not prefixes or r[0].startswith(tuple(prefixes))]
        if not rows:
            parser.error(f"no outlier row starts with any of {args.outlier_rows!r}")
        report["outliers"] = outlier_table(args.size, rows=rows)
        report["outlier_rows"] = args.outlier_rows
    if args.arm:
        from . import bench_arm

        report["arm_dtypes"] = args.arm
        saved = dict(c.rpartition("=")[::2] for c in args.arm_counts or [])
        saved = {cpu or "a76": Path(path) for cpu, path in saved.items()}
        report["arm"] = [row for cpu, dtypes in bench_arm.parse_spec(args.arm)
                         for row in (bench_arm.read_counts(saved[cpu], cpu) if cpu in saved
                                     else bench_arm.count(cpu, args.size, args.type, dtypes, 3))]
    if args.server:
        from .bench_server import measure_server

        report["server"] = measure_server(folder, threads=threads, quick=args.quick)

    print(write_reports(Path(args.out), Path(args.json), report))


if __name__ == "__main__":
    main()
