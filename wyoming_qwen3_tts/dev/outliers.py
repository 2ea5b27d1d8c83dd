"""Qwen-like massive activations injected into a built random checkpoint (for quantization tests).

Trained Qwen-family decoders carry a few residual channels tens to hundreds of times larger
than the rest (the same channels in every layer, from an early layer on), and a few MLP
channels whose activations (the input of down_proj) are as extreme.  Random weights have
neither, so a quantizer that flattens every channel but the largest (per-tensor or per-token
activation quantization) looks harmless on them.  This makes a variant of a checkpoint that
has both:

- residual outliers: in every decoder layer of the talker and of the code predictor, the rows
  of down_proj that write `channels` fixed residual channels are multiplied by `factor`, so
  those channels of the residual stream are about `factor` times the others; every norm then
  hands the products inputs whose outlier channels are ~`factor` times the rest;
- MLP outliers: `channels` fixed intermediate channels of up_proj are multiplied by `factor`,
  so down_proj's input has channels ~`factor` times the others (`--mlp amplify`, the default:
  as in trained models, those channels' weights in down_proj are ordinary, so they dominate
  its output).  `--mlp preserve` also divides down_proj's matching columns by `factor` (the
  float function of the MLP is unchanged, but those weight columns are then tiny: adversarial
  for a scale per output row, which real weights are not shown to be); `--mlp none` leaves
  the MLP alone.

The layers' norms are left as they are, so the outlier channels reach every product's input
(the "outlier features" of LLM.int8 in the q/k/v and gate/up inputs); the final norm of each
stack divides those channels by `factor` (`final_norm`), as a trained model must for its
heads to read more than those few channels.  The variant is its own
float32 reference (it is not the same function as the plain checkpoint): compare each
precision with float32 on the same variant.

    python -m wyoming_qwen3_tts.dev.outliers SRC OUT [--factor 30] [--channels 4]
        [--mlp amplify|preserve|none]
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F

from .checkpoints import BUILDER_VERSION, DEVMODELS, cached_checkpoint

VERSION = 3  # bump when what inject() does changes (cached variants are rebuilt)
MLP_MODES = ("amplify", "preserve", "none")
_DOWN = re.compile(r"^talker\.(?:code_predictor\.)?model\.layers\.(\d+)\.mlp\.down_proj\.weight$")


def _stack_of(name: str) -> str:
    return "predictor" if ".code_predictor." in name else "talker"


def _pick(n: int, k: int, seed: int) -> list[int]:
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=g)[:min(k, n)].tolist()


def inject(tensors: dict[str, torch.Tensor], factor: float = 30.0, channels: int = 4,
           seed: int = 0, mlp: str = "amplify", final_norm: bool = True) -> dict[str, list[int]]:
    """Inject the outliers into a checkpoint's tensors in place; returns the channels picked
    per stack ({"talker-residual": [...], "talker-mlp": [...], ...}): the same channels in
    every layer of a stack, at most one in 16 of its width ("a few": the tiny test models are
    16-64 wide)."""
    if mlp not in MLP_MODES:
        raise ValueError(f"mlp must be one of {', '.join(MLP_MODES)}, not {mlp!r}")
    picked: dict[str, list[int]] = {}
    for name in sorted(tensors):
        if not _DOWN.match(name):
            continue
        stack = _stack_of(name)
        up_name = name.replace("down_proj", "up_proj")
        hidden, inter = tensors[name].shape
        residual = picked.setdefault(f"{stack}-residual",
                                     _pick(hidden, min(channels, hidden // 16), seed))
        inner = picked.setdefault(f"{stack}-mlp",
                                  _pick(inter, min(channels, inter // 16), seed + 1))
        dtype = tensors[name].dtype
        down = tensors[name].to(torch.float32, copy=True)
        up = tensors[up_name].to(torch.float32, copy=True)
        down[residual] *= factor
        if mlp != "none":
            up[inner] *= factor
        if mlp == "preserve":
            down[:, inner] /= factor
        tensors[name], tensors[up_name] = down.to(dtype), up.to(dtype)
    if not picked:
        raise ValueError("no decoder layers found (not a Qwen3-TTS checkpoint?)")
    if final_norm:
        for stack, name in (("talker", "talker.model.norm.weight"),
                            ("predictor", "talker.code_predictor.model.norm.weight")):
            if name in tensors and f"{stack}-residual" in picked:
                weight = tensors[name].to(torch.float32, copy=True)
                weight[picked[f"{stack}-residual"]] /= factor
                tensors[name] = weight.to(tensors[name].dtype)
    return picked


def _link_or_copy(src: Path, dst: Path) -> None:
    if src.is_dir():
        shutil.copytree(src, dst, copy_function=_link_file)
    else:
        _link_file(src, dst)


def _link_file(src, dst) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def build_outlier_checkpoint(src: Path, out: Path, factor: float = 30.0, channels: int = 4,
                             seed: int = 0, mlp: str = "amplify") -> Path:
    """Write the outlier variant of checkpoint `src` to `out` (built beside it, then renamed
    into place, so `out` only ever exists complete; the other files are hard links)."""
    from safetensors.torch import load_file, save_file

    src, out = Path(src), Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for item in src.iterdir():
            if not item.name.startswith("model.safetensors") and item.name != "outliers.json":
                _link_or_copy(item, tmp / item.name)
        if (src / "model.safetensors.index.json").is_file():
            raise ValueError("sharded checkpoints are not supported")
        tensors = load_file(str(src / "model.safetensors"))
        picked = inject(tensors, factor, channels, seed, mlp)
        save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        (tmp / "outliers.json").write_text(json.dumps(
            {"source": str(src), "version": VERSION, "factor": factor, "mlp": mlp,
             "channels": picked}, indent=1) + "\n")
        tmp.chmod(0o755)  # mkdtemp's 0700 otherwise
        try:
            tmp.rename(out)
        except OSError:  # another process got there first
            if not out.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def cached_outlier_checkpoint(model_type: str = "custom_voice", size: str = "tiny",
                              factor: float = 30.0, channels: int = 4,
                              mlp: str = "amplify") -> Path:
    """The outlier variant of cached_checkpoint(model_type, size), built the first time."""
    final = DEVMODELS / (f"{size}-{model_type}-v{BUILDER_VERSION}-outliers{VERSION}"
                         f"-x{factor:g}-{channels}-{mlp}")
    if not final.is_dir():
        build_outlier_checkpoint(cached_checkpoint(model_type, size), final, factor, channels,
                                 mlp=mlp)
    return final


# -- the outlier-safety table (bench --outliers) ---------------------------------------------

# (label, talker scheme, code predictor scheme): every --dtype of every CPU class
# (precision.schemes_for), once each
CONTROL = "control-noise-1pct"
ROWS = [
    ("control: float32, every weight x (1 + 1 % Gaussian noise)", CONTROL, CONTROL),
    ("x86 int8", "int8-fbgemm", "int8-fbgemm"),
    ("x86 int8-weight-only", "int8-wo-bf16", "int8-wo-bf16"),
    ("x86 int4 (auto on x86 before the check)", "int8-fbgemm", "int4-dyn32"),
    ("x86 int4-all = Pi 4 int4-all", "int4-dyn32", "int4-dyn32"),
    ("ARM int8 = int8-dyn32, x86's first fallback", "int8-dyn32", "int8-dyn32"),
    ("ARM int8-weight-only", "int8-wo-f32", "int8-wo-f32"),
    ("ARM int4 (auto on Pi 4)", "int8-dyn32", "int4-dyn32"),
    ("ARM int4 (auto on Pi 5)", "int8-dyn32", "int4-kleidiai-g32"),
    ("ARM int4-all (Pi 5)", "int4-kleidiai-g32", "int4-kleidiai-g32"),
]
# what auto picks per CPU class (precision.AUTO): also measured as served after the check
AUTO_ROWS = ("x86 int4 (auto on x86 before the check)", "ARM int4 (auto on Pi 5)",
             "ARM int4 (auto on Pi 4)")


def _int8_wo_f32_simulated(linear: torch.nn.Linear):
    """int8-wo-f32's arithmetic with float32 weights: its dequantized weights (q * scale),
    float32 activations; the same values up to float rounding (tests/test_outliers.py)."""
    from ..engine import quantize

    real = quantize.int8_weight_only(linear, torch.float32)
    q, scales, _, bias = real.args
    weight = q.float() * scales[:, None]
    return quantize.Product(F.linear, (weight, bias), real.in_features, real.out_features,
                            real.weight_bytes, real.kind)


def _asymmetric_int8_rows(x: torch.Tensor) -> torch.Tensor:
    """x with each row quantized to int8 asymmetrically (zero point; KleidiAI's qai8dxp,
    also what torch's reference path of _dyn_quant_matmul_4bit computes), dequantized."""
    lo = x.amin(dim=-1, keepdim=True).clamp(max=0)
    hi = x.amax(dim=-1, keepdim=True).clamp(min=0)
    scale = ((hi - lo) / 255).clamp(min=1e-30)
    zero = torch.round(-128 - lo / scale)
    q = torch.clamp(torch.round(x / scale) + zero, -128, 127)
    return (q - zero) * scale


def _kleidiai_op(x, weight, bias):
    return F.linear(_asymmetric_int8_rows(x.float()), weight, bias)


def _int4_kleidiai_simulated(group: int):
    """int4-kleidiai-gN's arithmetic in float32: dequantized 4-bit weights (bfloat16 scales
    per group, as packed), activations quantized per row as the kernel does."""
    from ..engine import quantize

    def convert(linear: torch.nn.Linear):
        k = linear.in_features
        g = min(group, k)
        if k % g:
            return _int8_wo_f32_simulated(linear)
        w = linear.weight.detach().float()
        blocks = w.reshape(-1, g)
        scales = blocks.abs().amax(dim=1, keepdim=True).clamp(min=1e-8) / 7
        q = torch.round(blocks / scales).clamp(-8, 7)
        stored = scales.float() if g == k else scales.to(torch.bfloat16).float()
        weight = (q * stored).reshape(w.shape)
        bias = None if linear.bias is None else linear.bias.detach().float()
        return quantize.Product(_kleidiai_op, (weight, bias), k, linear.out_features,
                                q.numel() // 2 + scales.numel() * 2, f"int4-kleidiai-g{group}")

    return convert


def _control(linear: torch.nn.Linear):
    """Not a quantizer: float32 weights with 1 % random relative noise each (seeded by the
    shape), float32 activations.  How much an error that does not depend on the activations
    grows on a checkpoint: its ratio outliers / plain is the checkpoint's own sensitivity."""
    from ..engine import quantize

    w = linear.weight.detach().float()
    g = torch.Generator().manual_seed(w.shape[0] * 7919 + w.shape[1])
    w = w * (1 + 0.01 * torch.randn(w.shape, generator=g))
    bias = None if linear.bias is None else linear.bias.detach().float()
    return quantize.Product(F.linear, (w, bias), linear.in_features, linear.out_features,
                            w.numel() * 4, CONTROL)


SIMULATED = {"int8-wo-f32": _int8_wo_f32_simulated,
             **{f"int4-kleidiai-g{g}": _int4_kleidiai_simulated(g) for g in (32, 64, 128)}}


@contextmanager
def simulated_kernels(schemes=tuple(SIMULATED)) -> Iterator[None]:
    """The ARM schemes' arithmetic with fast float32 products, for measuring their error on
    x86 (where int8-wo-f32 takes ~17 ms a token per product and KleidiAI's reference path
    ~30 ms): same values up to float rounding, nothing about speed."""
    from ..engine import quantize

    saved = {name: quantize.SCHEMES[name] for name in schemes}
    quantize.SCHEMES.update({name: SIMULATED[name] for name in schemes})
    # the control "scheme" (not a quantizer), its heads and projections alike
    quantize.SCHEMES[CONTROL], quantize.INT8_OF[CONTROL] = _control, CONTROL
    try:
        yield
    finally:
        quantize.SCHEMES.update(saved)
        del quantize.SCHEMES[CONTROL], quantize.INT8_OF[CONTROL]


def _summary(figures) -> dict:
    errors = [r["error"] for r in figures.layers]
    worst = max(range(len(errors)), key=lambda i: errors[i])
    return {"layers": errors, "median_layer": round(sorted(errors)[len(errors) // 2], 4),
            "worst_layer": round(errors[worst], 4), "worst_index": worst,
            "hidden": round(figures.hidden, 4), "logits": round(figures.logits, 4),
            "argmax_agreement": round(figures.argmax_agreement, 3)}


def measure_row(folder: Path, talker: str, predictor: str, fallback: bool = False,
                smooth: bool | None = None) -> dict:
    """One scheme pair against float32 on one checkpoint (faithfulness.measure: teacher-forced,
    layer by layer, the check's fixed prompts); `smooth` (default: as `fallback`) as the
    first-load check smooths."""
    from ..engine import faithfulness
    from ..engine.loader import load_model
    from ..engine.precision import Precision

    precision = Precision(generation="int8", vocoder=torch.float32, talker=talker,
                          predictor=predictor)
    tts, plan = load_model(folder, precision)
    plan, report = faithfulness.measure(folder, tts.model, tts.processor, plan,
                                        fallback=fallback,
                                        smooth=fallback if smooth is None else smooth)
    row = {"talker": _summary(report.talker), "predictor": _summary(report.predictor),
           "moved": [dataclasses.asdict(m) for m in report.moved],
           "smoothed": [dataclasses.asdict(m) for m in report.smoothed],
           "moves": faithfulness.describe(report.moved, report.smoothed),
           "tokens": report.tokens,
           "languages": report.languages,
           "seconds": round(report.seconds, 1),
           "schemes": [plan.talker.scheme, plan.predictor.scheme]}
    del tts, plan
    gc.collect()
    return row


def outlier_table(size: str = "0.6b", factor: float = 30.0, channels: int = 4,
                  mlp_modes: tuple[str, ...] = ("amplify", "preserve"),
                  rows=ROWS, auto_rows=AUTO_ROWS) -> dict:
    """Every scheme pair of ROWS against float32 on the plain checkpoint of `size` and on its
    outlier variants; `auto_rows` (labels) also with the first-load check's fallback on."""
    from ..engine.quantize import unavailable
    from .checkpoints import cached_checkpoint

    variants = {"plain": cached_checkpoint("custom_voice", size)}
    for mode in mlp_modes:
        variants[f"outliers ({mode})"] = cached_outlier_checkpoint(
            "custom_voice", size, factor, channels, mlp=mode)
    result: dict = {"size": size, "factor": factor, "channels": channels,
                    "threads": torch.get_num_threads(), "rows": []}
    auto_rows = set(auto_rows)
    with simulated_kernels([s for s in SIMULATED if unavailable(s) or
                            os.uname().machine != "aarch64"]):
        for label, talker, predictor in rows:
            for name, folder in variants.items():
                for fallback in (False, True) if label in auto_rows else (False,):
                    if fallback and name == "plain":
                        continue
                    started = time.monotonic()
                    row = measure_row(folder, talker, predictor, fallback)
                    row.update(label=label + (", after the first-load check" if fallback
                                              else ""),
                               variant=name, talker_scheme=talker, predictor_scheme=predictor,
                               simulated=sorted({talker, predictor} & set(SIMULATED)
                                                if os.uname().machine != "aarch64" else []),
                               wall_s=round(time.monotonic() - started, 1))
                    result["rows"].append(row)
                    print(json.dumps({k: v for k, v in row.items()
                                      if k not in ("talker", "predictor")}
                                     | {"hidden": row["talker"]["hidden"],
                                        "logits": row["talker"]["logits"]}), flush=True)
    return result


def markdown_outliers(table: dict) -> list[str]:
    """The outlier-safety section of BENCHMARKS.md."""
    lines = [
        "", "### Outlier safety (against float32, teacher-forced)", "",
        f"The {table['size']} checkpoint as built, and its variants with Qwen-like outliers "
        f"(`python -m wyoming_qwen3_tts.dev.outliers`: in every decoder layer {table['channels']}"
        f" residual channels ~{table['factor']:g}x the rest and {table['channels']} MLP "
        f"channels ~{table['factor']:g}x; *amplify* leaves down_proj's weights ordinary, "
        "*preserve* also divides its matching columns, adversarial for a scale per output "
        "row). Each variant is its own float32 reference. Figures of the first-load check "
        "(engine/faithfulness.py: the same fixed prompts in 4 languages + 8 speech frames, "
        "every layer fed float32's input): a layer's error = |its quantized update - "
        "float32's| / |float32's update|; last hidden and logits = relative error of the "
        "quantized stream's final normed hidden state and of the logits (codebook 0 from the "
        "talker, 1-15 from the code predictor); codes agreeing = argmax (greedy code) "
        "agreement with float32 at every position. x ratio = the figure on the variant / on "
        "the plain checkpoint (target for auto's choice: <= 1.5). ARM schemes measured on "
        "x86 use the same arithmetic in float32 (`dev.outliers.simulated_kernels`), marked "
        "(sim).", "",
        "| precision (talker / code predictor) | checkpoint | talker layer error median / "
        "worst | last hidden | codebook-0 logits | x ratio (hidden / logits) | x ratio / "
        "control's | codes agreeing | code predictor layer error median / worst | last hidden "
        "| logits 1-15 | codes agreeing | the check |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    plain = {r["label"].split(", after")[0]: r for r in table["rows"] if r["variant"] == "plain"}
    control = {r["variant"]: r for r in table["rows"] if r["talker_scheme"] == CONTROL}

    def hidden_ratio(r) -> float:
        base = plain[r["label"].split(", after")[0]]
        return r["talker"]["hidden"] / max(base["talker"]["hidden"], 1e-9)
    for r in table["rows"]:
        t, p = r["talker"], r["predictor"]
        base = plain.get(r["label"].split(", after")[0])
        ratio = against_control = ""
        if base is not None and r["variant"] != "plain":
            ratio = (f"{hidden_ratio(r):.2f} / "
                     f"{t['logits'] / max(base['talker']['logits'], 1e-9):.2f}")
            if r["variant"] in control:
                against_control = f"{hidden_ratio(r) / hidden_ratio(control[r['variant']]):.2f}"
        sim = " (sim)" if r["simulated"] else ""
        lines.append(
            f"| {r['label']}: {r['talker_scheme']} / {r['predictor_scheme']}{sim} "
            f"| {r['variant']} | {t['median_layer']} / {t['worst_layer']} | {t['hidden']} "
            f"| {t['logits']} | {ratio} | {against_control} "
            f"| {100 * t['argmax_agreement']:.0f} % "
            f"| {p['median_layer']} / {p['worst_layer']} | {p['hidden']} | {p['logits']} "
            f"| {100 * p['argmax_agreement']:.0f} % "
            f"| {r['moves'] if r['moved'] or r.get('smoothed') else ''} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wyoming_qwen3_tts.dev.outliers",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("src", help="a checkpoint folder (e.g. one built by dev.checkpoints)")
    parser.add_argument("out", help="output folder")
    parser.add_argument("--factor", type=float, default=30.0)
    parser.add_argument("--channels", type=int, default=4)
    parser.add_argument("--mlp", choices=MLP_MODES, default="amplify")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    out = build_outlier_checkpoint(Path(args.src), Path(args.out), args.factor, args.channels,
                                   args.seed, args.mlp)
    print(f"outlier variant in {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
