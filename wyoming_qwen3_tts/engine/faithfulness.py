"""How faithful a quantized plan is to float32, on the checkpoint being served.

Random test weights have none of a trained model's outlier channels, so the first time a
checkpoint is served with a quantized scheme, `check` compares its talker and code predictor
with float32, teacher-forced (both see the same inputs, so an error cannot compound into a
different sequence):

- inputs: a fixed prompt per language (english, german, chinese, japanese: those the
  checkpoint has), each followed by FRAMES frames' worth of speech inputs (the sum of 16 fixed
  pseudo-random codes' embeddings, as the decode loop feeds them), ~45 tokens each; for the
  code predictor, 16-token sequences (a talker hidden state of the float32 run, then 15 fixed
  codes' embeddings), PREDICTOR_SEQUENCES per prompt;
- layer by layer, so memory stays bounded: the float32 weights of one layer at a time are
  read from the checkpoint file (~63 MB for a 0.6B talker layer), and each layer's error is
  its quantized update against float32's, both on float32's input:
  |f_q(x) - f(x)| / |f(x) - x| (the residual add itself is exact in every scheme);
- end to end: the last hidden state and the logits (codebook 0 from the talker's codec head,
  codebooks 1-15 from the code predictor's heads) of the quantized stream against the float32
  stream, and how often their argmax (the greedy code) agrees.

Every layer of a scheme that quantizes activations (fbgemm, KleidiAI's 4-bit) or weights to 4
bits is also converted smoothed (smoothing.py: its outlier channels moved from the
activations into the weights, with the ranges float32's own inputs had there), once per
migration strength in smoothing.ALPHAS, and the conversion with the least error is kept (a
smoothed one only if it measures at least 10 % better): same scheme, same speed.

When `auto` chose the precision, a layer (or a set of heads) whose error exceeds BOUNDS
(HEAD_BOUNDS) is converted again with the next safer scheme (quantize.safer: fbgemm ->
int8 with activations per block of 32 (int8-dyn32) -> weight-only int8 -> float32; 4-bit ->
int8), and while a stack's last hidden state is still
off by more than STACK_BOUNDS, the third of its layers with the largest errors still in its
main scheme goes one step safer and the stack is measured again (at most, the whole stack
falls back one step).  With an explicit --dtype the figures are logged, with a warning when out of
bounds, and the choice of scheme is kept (smoothed where that measured better).  The result
is cached in DATA_DIR/faithfulness/ per checkpoint (path, file sizes and times), precision,
CPU class and torch version, with the smoothed layers' ranges in a .ranges.safetensors file
beside it: later starts redo the same conversions without measuring.

The bounds come from the 0.6B geometry (BENCHMARKS.md, "Outlier safety"): on random weights
without outliers fbgemm's layers are off by 0.03-0.06 (weight-only int8 0.01-0.02, 4-bit
0.08-0.15), its last hidden state by 0.08; with Qwen-like outlier channels fbgemm's layers
reach 0.2-0.6 while weight-only int8 stays where it was.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import types
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import quantize, smoothing
from .decoding import Stack
from .precision import Precision
from .prompt import ClonePrompt, PromptBuilder
from .quantize import Layer, ModelPlan, Product, StackPlan

_LOGGER = logging.getLogger(__name__)

VERSION = 4  # bump when what is measured, how schemes convert or what they fall back to changes
# (invalidates caches)

# a layer's relative error (its quantized update against float32's), per scheme family
BOUNDS = {"int8": 0.1, "int4": 0.25}
# the heads' logits on float32 hidden states (int8 in every quantized scheme)
HEAD_BOUNDS = {"int8": 0.05, "int4": 0.05}
# a stack's last hidden state after the layers' own fallbacks: int8 within 1.25x of fbgemm's
# 0.08 on the 0.6B checkpoint without outliers (the target is 1.5x; smoothed, 0.06 there)
STACK_BOUNDS = {"int8": 0.1, "int4": 0.35}
STACK_STEPS = 3  # a stack out of its bound falls back a third of its layers at a time

LANGUAGE_TEXTS = {
    "english": "The kitchen lights are off and the door is locked.",
    "german": "Das Licht in der Küche ist aus, die Tür ist zu.",
    "chinese": "厨房的灯已经关了，门也锁好了。",
    "japanese": "台所の電気を消して、ドアに鍵をかけました。",
}
FRAMES = 8  # teacher-forced speech frames after each prompt
PREDICTOR_SEQUENCES = 4  # code-predictor sequences per prompt
TALKER, PREDICTOR, CODEC_HEAD, PREDICTOR_HEADS = (
    "talker", "code predictor", "codec head", "code predictor heads")


def family(scheme: str) -> str:
    return "int4" if scheme.startswith("int4") else "int8"


@dataclass
class StackFigures:
    layers: list[dict] = field(default_factory=list)  # {"scheme", "error", "stream"} per layer
    hidden: float = 0.0  # last hidden state, quantized stream against float32
    logits: float = 0.0
    argmax_agreement: float = 1.0
    heads: float = 0.0  # the heads on float32 hidden states (their own error)

    @property
    def worst_layer(self) -> float:
        return max((r["error"] for r in self.layers), default=0.0)


@dataclass
class Move:
    """One conversion the check made: a layer (or a stack's heads) to a safer scheme."""

    what: str  # TALKER, PREDICTOR (a layer: `layer` set), CODEC_HEAD or PREDICTOR_HEADS
    layer: int | None
    old: str
    new: str
    error: float
    bound: float
    why: str = "layer"  # "layer" (its own error), "stack" (the whole stack fell back), "heads"


@dataclass
class Smoothed:
    """A layer the check kept smoothed (smoothing.py) with migration strength `alpha`."""

    what: str  # TALKER or PREDICTOR
    layer: int
    scheme: str
    alpha: float


@dataclass
class Report:
    talker: StackFigures
    predictor: StackFigures
    moved: list[Move] = field(default_factory=list)
    smoothed: list[Smoothed] = field(default_factory=list)
    # the float32 input ranges each smoothed layer was smoothed with, by (what, layer)
    ranges: dict[tuple[str, int], smoothing.Ranges] = field(default_factory=dict)
    tokens: int = 0
    languages: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def figures(self) -> str:
        t, p = self.talker, self.predictor
        return (f"talker layers <= {t.worst_layer:.4f}, last hidden {t.hidden:.4f}, "
                f"codebook-0 logits {t.logits:.4f} (greedy codes agree "
                f"{100 * t.argmax_agreement:.0f} %); code predictor layers <= "
                f"{p.worst_layer:.4f}, last hidden {p.hidden:.4f}, logits 1-15 {p.logits:.4f} "
                f"({100 * p.argmax_agreement:.0f} %)")


def describe_moves(moved: list[Move]) -> str:
    """'kept every layer' or e.g. 'moved talker layers 0-3, 7 int8-fbgemm -> int8-wo-bf16
    (errors up to 0.31 > 0.1)'."""
    if not moved:
        return "kept every layer"
    groups: dict[tuple, list[Move]] = {}
    for m in moved:
        groups.setdefault((m.what, m.old, m.new, m.why), []).append(m)
    parts = []
    for (what, old, new, why), moves in groups.items():
        if moves[0].layer is None:
            name = what
        else:
            name = f"{what} layer{'s' if len(moves) > 1 else ''} " + _ranges(
                [m.layer for m in moves if m.layer is not None])
        error = max(m.error for m in moves)
        reason = (f"its last hidden state {error:.4f} > {moves[0].bound}" if why == "stack"
                  else f"error{'s up to' if len(moves) > 1 else ''} {error:.4f} > "
                  f"{moves[0].bound}")
        parts.append(f"{name} {old} -> {new} ({reason})")
    return "moved " + "; ".join(parts)


def describe_smoothing(smoothed: list[Smoothed]) -> str:
    """'' or e.g. 'smoothed talker layers 0-26 (alpha 0.5), 27 (alpha 0.75); code predictor
    layers 0-4 (alpha 0.75)'."""
    if not smoothed:
        return ""
    stacks: dict[str, dict[float, list[int]]] = {}
    for m in smoothed:
        stacks.setdefault(m.what, {}).setdefault(m.alpha, []).append(m.layer)
    return "smoothed " + "; ".join(
        f"{what} layer{'s' if sum(map(len, alphas.values())) > 1 else ''} " + ", ".join(
            f"{_ranges(layers)} (alpha {alpha:g})" for alpha, layers in alphas.items())
        for what, alphas in stacks.items())


def describe(moved: list[Move], smoothed: list[Smoothed]) -> str:
    """What the check did: describe_moves, then describe_smoothing if any."""
    return "; ".join(filter(None, (describe_moves(moved), describe_smoothing(smoothed))))


def _ranges(indices: list[int]) -> str:
    out, start, prev = [], None, None
    for i in sorted(indices) + [None]:
        if start is None:
            start = prev = i
        elif i is not None and prev is not None and i == prev + 1:
            prev = i
        else:
            out.append(f"{start}" if start == prev else f"{start}-{prev}")
            start = prev = i
    return ", ".join(out)


# -- float32 weights from the file, one layer at a time ------------------------------------


class _Weights:
    """Tensors of a checkpoint read on demand (memory-mapped safetensors)."""

    def __init__(self, folder: Path) -> None:
        from safetensors import safe_open

        index = folder / "model.safetensors.index.json"
        files = sorted(set(json.loads(index.read_text())["weight_map"].values())) \
            if index.is_file() else ["model.safetensors"]
        self._files = [safe_open(str(folder / f), framework="pt") for f in files]
        self._where = {k: f for f in self._files for k in f.keys()}  # noqa: SIM118

    def __contains__(self, name: str) -> bool:
        return name in self._where

    def get(self, name: str) -> torch.Tensor:
        return self._where[name].get_tensor(name).float()

    def linear(self, prefix: str) -> torch.nn.Linear:
        weight = self.get(prefix + ".weight")
        bias = self.get(prefix + ".bias") if prefix + ".bias" in self else None
        return quantize.linear_of(weight, bias)

    def layer(self, prefix: str, library_layer, scheme: str,
              smooth: tuple[smoothing.Ranges, float] | None = None) -> Layer:
        """Layer `prefix` converted with `scheme` from its float32 weights in the file;
        with `smooth` = (ranges, alpha), smoothed first (smoothing.smoothed)."""
        return convert_layer(float_layer(self, prefix, library_layer), scheme, smooth)


def convert_layer(layer: types.SimpleNamespace, scheme: str,
                  smooth: tuple[smoothing.Ranges, float] | None = None) -> Layer:
    """A float_layer converted with `scheme` (smoothed first with `smooth`); `layer` itself
    stays whole, so one read of the file serves every conversion tried."""
    if smooth is not None:
        return quantize._layer(smoothing.smoothed(layer, *smooth), scheme)
    ns = types.SimpleNamespace  # _layer takes the projections out of what it is given
    return quantize._layer(ns(**{**vars(layer), "self_attn": ns(**vars(layer.self_attn)),
                                 "mlp": ns(**vars(layer.mlp))}), scheme)


def float_layer(weights: _Weights, prefix: str, library_layer) -> types.SimpleNamespace:
    """A decoder layer with the library's attributes: float32 projections from the file,
    norms from the loaded layer (float32 copies of the stored values)."""
    attn = library_layer.self_attn
    ns = types.SimpleNamespace
    return ns(
        self_attn=ns(**{n: weights.linear(f"{prefix}.self_attn.{n}")
                        for n in ("q_proj", "k_proj", "v_proj", "o_proj")},
                     q_norm=attn.q_norm, k_norm=attn.k_norm, head_dim=attn.head_dim,
                     scaling=attn.scaling),
        mlp=ns(**{n: weights.linear(f"{prefix}.mlp.{n}")
                  for n in ("gate_proj", "up_proj", "down_proj")}),
        input_layernorm=library_layer.input_layernorm,
        post_attention_layernorm=library_layer.post_attention_layernorm,
    )


class _Rel:
    """Relative L2 error accumulated over several tensors: |got - want| / |want|."""

    def __init__(self) -> None:
        self.num = self.den = 0.0

    def add(self, got: torch.Tensor, want: torch.Tensor) -> None:
        self.num += float((got.float() - want.float()).pow(2).sum())
        self.den += float(want.float().pow(2).sum())

    @property
    def value(self) -> float:
        return (self.num / self.den) ** 0.5 if self.den > 0 else 0.0


def _rel(got: list[torch.Tensor], want: list[torch.Tensor]) -> float:
    r = _Rel()
    for g, w in zip(got, want, strict=True):
        r.add(g, w)
    return r.value


# -- the measurement -----------------------------------------------------------------------


@dataclass
class _StackSpec:
    name: str  # TALKER or PREDICTOR
    prefix: str  # of its layers' tensors in the file
    library_layers: Any  # the library's decoder layers (their norms)


def _stack_pass(stack: Stack, plan: StackPlan, weights: _Weights, spec: _StackSpec,
                inputs: list[torch.Tensor], figures: StackFigures, report: Report,
                smooth: bool, fallback: bool, force: tuple[set[int], float] | None = None
                ) -> tuple[StackPlan, list, list]:
    """Both streams through one stack, layer by layer; returns the (possibly changed) plan
    and the final hidden states of the float32 and the quantized streams.  With `smooth`,
    each quantized layer is also converted smoothed (smoothing.ALPHAS, with the ranges of
    float32's own inputs) and the version with the least error is kept; with `fallback`, a
    layer out of BOUNDS moves to safer schemes until it is within them.  With `force` =
    (layers, the stack's error), a later pass: those layers move one step safer first (and
    only they are tried smoothed again).  Conversions and smoothings go to `report`."""
    xs_ref, xs_q = list(inputs), list(inputs)
    replaced: dict[int, Layer] = {}
    figures.layers = []
    prior = {m.layer: m.alpha for m in report.smoothed if m.what == spec.name}  # a 2nd pass
    report.smoothed = [m for m in report.smoothed if m.what != spec.name]
    for i, layer in enumerate(plan.layers):
        # this layer's float32 weights, read once for the reference and every conversion
        base = float_layer(weights, f"{spec.prefix}.{i}", spec.library_layers[i])
        ref_layer = convert_layer(base, "float32")
        ropes = [stack.rope(0, x.shape[1]) for x in xs_ref]

        def run(desc: Layer, xs: list[torch.Tensor], i=i, ropes=ropes) -> list[torch.Tensor]:
            return [stack.layer(i, desc, x, 0, *rope) for x, rope in zip(xs, ropes, strict=True)]

        recorder = smoothing.RangeRecorder()
        ys_ref = run(recorder.layer(ref_layer), xs_ref)
        ranges = recorder.ranges()
        updates_ref = [y - x for y, x in zip(ys_ref, xs_ref, strict=True)]

        def error_of(desc: Layer, xs=xs_ref, updates=updates_ref) -> float:
            return _rel([y - x for y, x in zip(run(desc, xs), xs, strict=True)], updates)

        def convert(scheme: str, alpha: float | None, base=base, ranges=ranges) -> Layer:
            return convert_layer(base, scheme, None if alpha is None else (ranges, alpha))

        def least_error(layer: Layer, error: float, alpha: float | None
                        ) -> tuple[Layer, float, float | None]:
            """`layer` (smoothed with `alpha`) or a smoothed conversion of its scheme,
            whichever measures best."""
            best: tuple[Layer, float, float | None] = (layer, error, alpha)
            if smooth and smoothing.helps(layer.scheme):
                for alpha in smoothing.ALPHAS:
                    candidate = convert(layer.scheme, alpha)
                    e = error_of(candidate)
                    if e < best[1] * smoothing.GAIN:
                        best = (candidate, e, alpha)
            return best

        def move(layer: Layer, error: float, bound: float, why: str, i=i) -> Layer:
            safer = quantize.safer(layer.scheme)
            assert safer is not None, layer.scheme
            report.moved.append(Move(spec.name, i, layer.scheme, safer, round(error, 5), bound,
                                     why))
            new = convert(safer, None)
            replaced[i] = new
            return new

        alpha, tried = prior.get(i), force is None
        if force is not None and i in force[0] and quantize.safer(layer.scheme) is not None:
            layer = move(layer, force[1], STACK_BOUNDS[family(layer.scheme)], "stack")
            alpha, tried = None, True
        error = error_of(layer)
        if tried:
            layer, error, alpha = least_error(layer, error, alpha)
        while fallback and error > BOUNDS[family(layer.scheme)] and \
                quantize.safer(layer.scheme) is not None:
            layer = move(layer, error, BOUNDS[family(layer.scheme)], "layer")
            layer, error, alpha = least_error(layer, error_of(layer), None)
        if alpha is not None:
            replaced[i] = layer
            report.smoothed.append(Smoothed(spec.name, i, layer.scheme, alpha))
            report.ranges[(spec.name, i)] = ranges
        ys_q = run(layer, xs_q)
        figures.layers.append({"scheme": layer.scheme, "alpha": alpha, "error": round(error, 5),
                               "stream": round(_rel(ys_q, ys_ref), 5)})
        xs_ref, xs_q = ys_ref, ys_q
        del ref_layer, base
    plan = plan.replace_layers(replaced) if replaced else plan
    return plan, [plan.norm(x) for x in xs_ref], [plan.norm(x) for x in xs_q]


def _logit_figures(figures: StackFigures, cases: Callable[[], Iterable[tuple]]) -> None:
    """cases() yields (float32 head, quantized head, float32 hidden, quantized hidden)."""
    logits, heads = _Rel(), _Rel()
    agree = total = 0
    for ref_head, head, h_ref, h_q in cases():
        want = ref_head(h_ref)
        got = head(h_q).float()
        logits.add(got, want)
        heads.add(head(h_ref).float(), want)
        agree += int((got.argmax(-1) == want.argmax(-1)).sum())
        total += want[..., 0].numel()
    figures.logits, figures.heads = logits.value, heads.value
    figures.argmax_agreement = agree / max(total, 1)


def _prompts(model, tokenizer, languages: list[str]) -> list:
    builder = PromptBuilder(model, tokenizer, torch.float32)
    cfg = model.config.talker_config
    kind = model.tts_model_type
    voice: dict = {}
    if kind == "custom_voice":
        voice = {"speaker": next(iter(cfg.spk_id))}
    elif kind == "voice_design":
        voice = {"instruct": "A calm, warm voice."}
    elif kind == "base":
        voice = {"clone": ClonePrompt(speaker_embedding=torch.zeros(cfg.hidden_size))}
    return [builder.build(LANGUAGE_TEXTS[lang], language=lang, **voice) for lang in languages]


def _stack_with_fallback(stack: Stack, plan: StackPlan, weights: _Weights, spec: _StackSpec,
                         inputs: list[torch.Tensor], figures: StackFigures, report: Report,
                         smooth: bool, fallback: bool) -> tuple[StackPlan, list, list]:
    """_stack_pass, then with `fallback`, while the stack's last hidden state is out of
    STACK_BOUNDS, the worst third of the layers still in the stack's main scheme (by their
    own error) one step safer, and measured again: at most the whole stack one step."""
    new_plan, hs_ref, hs_q = _stack_pass(stack, plan, weights, spec, inputs, figures, report,
                                         smooth, fallback)
    figures.hidden = _rel(hs_q, hs_ref)
    main = _main_scheme(new_plan)
    step = -(-len(new_plan.layers) // STACK_STEPS)
    while fallback and figures.hidden > STACK_BOUNDS[family(main)] and \
            quantize.safer(main) is not None:
        left = [i for i, layer in enumerate(new_plan.layers) if layer.scheme == main]
        if not left:
            break
        worst = sorted(left, key=lambda i: figures.layers[i]["error"], reverse=True)[:step]
        new_plan, hs_ref, hs_q = _stack_pass(stack, new_plan, weights, spec, inputs, figures,
                                             report, smooth, fallback,
                                             force=(set(worst), figures.hidden))
        figures.hidden = _rel(hs_q, hs_ref)
    return new_plan, hs_ref, hs_q


def _main_scheme(plan: StackPlan) -> str:
    counts: dict[str, int] = {}
    for layer in plan.layers:
        counts[layer.scheme] = counts.get(layer.scheme, 0) + 1
    return max(counts, key=lambda s: counts[s])


@torch.inference_mode()
def measure(folder: Path, model, tokenizer, plan: ModelPlan, fallback: bool = False,
            languages: list[str] | None = None, smooth: bool = False
            ) -> tuple[ModelPlan, Report]:
    """Compare `plan` (and the model's quantized heads) with float32 read from `folder`;
    with `smooth`, each quantized layer is also tried smoothed (smoothing.py) and kept so
    where that measures better; with `fallback`, layers, stacks and heads out of bounds are
    converted again, safer (the model's codec head is replaced in place).  Returns the plan
    to serve and the figures; without either, `plan` itself."""
    started = time.monotonic()
    talker = model.talker
    predictor = talker.code_predictor
    cfg = model.config.talker_config
    weights = _Weights(Path(folder))
    known = [name for name in cfg.codec_language_id or {} if "dialect" not in name]
    languages = languages or [lang for lang in LANGUAGE_TEXTS if lang in known] or \
        ["english"]
    generator = torch.Generator().manual_seed(0)
    groups = cfg.num_code_groups
    codec_embedding = talker.get_input_embeddings()
    sub_embeddings = predictor.get_input_embeddings()

    def embed(codes: torch.Tensor, n: int) -> list[torch.Tensor]:  # the first n of 16 codes
        return [codec_embedding.weight[codes[0]].float().view(1, 1, -1)] + \
            [sub_embeddings[j].weight[codes[j + 1]].float().view(1, 1, -1)
             for j in range(n - 1)]

    def random_codes() -> torch.Tensor:
        return torch.cat([torch.randint(0, 2048, (1,), generator=generator),
                          torch.randint(0, sub_embeddings[0].num_embeddings, (groups - 1,),
                                        generator=generator)])

    inputs = []
    for prompt in _prompts(model, tokenizer, languages):
        frames = [torch.cat(embed(random_codes(), groups), dim=1).sum(1, keepdim=True)
                  + prompt.tts_pad.float() for _ in range(FRAMES)]
        inputs.append(torch.cat([prompt.embeds.float(), *frames], dim=1))
    report = Report(StackFigures(), StackFigures(), tokens=sum(x.shape[1] for x in inputs),
                    languages=languages)

    # the talker
    spec = _StackSpec(TALKER, "talker.model.layers", talker.model.layers)
    stack = Stack(plan.talker, initial_length=max(x.shape[1] for x in inputs))
    talker_plan, hs_ref, hs_q = _stack_with_fallback(
        stack, plan.talker, weights, spec, inputs, report.talker, report, smooth, fallback)
    ref_head = quantize.dense(weights.linear("talker.codec_head"))

    def talker_cases():
        return ((ref_head, talker.codec_head, r, q) for r, q in zip(hs_ref, hs_q, strict=True))

    _logit_figures(report.talker, talker_cases)
    head_scheme = quantize.product_of(talker.codec_head).kind
    head_bound = HEAD_BOUNDS[family(head_scheme)]
    if fallback and report.talker.heads > head_bound and quantize.safer(head_scheme) is not None:
        safer = quantize.safer(head_scheme)
        assert safer is not None, head_scheme
        report.moved.append(Move(CODEC_HEAD, None, head_scheme, safer,
                                 round(report.talker.heads, 5), head_bound, "heads"))
        talker.codec_head = _head(weights, "talker.codec_head", safer)
        _logit_figures(report.talker, talker_cases)

    # the code predictor: a talker hidden state, then 15 codes' embeddings, per sequence
    projection = "talker.code_predictor.small_to_mtp_projection"
    ref_project = quantize.dense(weights.linear(projection)) if projection + ".weight" in \
        weights else (lambda x: x)
    seqs = []
    for h in hs_ref:
        for p in torch.linspace(0, h.shape[1] - 1, PREDICTOR_SEQUENCES).long().tolist():
            parts = [h[:, p:p + 1]] + embed(random_codes(), groups - 1)
            seqs.append(ref_project(torch.cat(parts, dim=1)))
    spec = _StackSpec(PREDICTOR, "talker.code_predictor.model.layers", predictor.model.layers)
    stack = Stack(plan.predictor, initial_length=groups)
    predictor_plan, ps_ref, ps_q = _stack_with_fallback(
        stack, plan.predictor, weights, spec, seqs, report.predictor, report, smooth,
        fallback)
    heads = list(plan.predictor_heads)

    def predictor_cases():
        # head j reads position j + 1 of every sequence; one float32 head in memory at a time
        for j in range(groups - 1):
            ref = quantize.dense(weights.linear(f"talker.code_predictor.lm_head.{j}"))
            for r, q in zip(ps_ref, ps_q, strict=True):
                yield ref, heads[j], r[:, j + 1], q[:, j + 1]

    _logit_figures(report.predictor, predictor_cases)
    head_scheme = heads[0].kind
    head_bound = HEAD_BOUNDS[family(head_scheme)]
    if fallback and report.predictor.heads > head_bound and quantize.safer(head_scheme) is not None:
        safer = quantize.safer(head_scheme)
        assert safer is not None, head_scheme
        report.moved.append(Move(PREDICTOR_HEADS, None, head_scheme, safer,
                                 round(report.predictor.heads, 5), head_bound, "heads"))
        heads = _predictor_heads(weights, len(heads), safer)
        _logit_figures(report.predictor, predictor_cases)
    if report.moved or report.smoothed:
        plan = ModelPlan(talker=talker_plan, predictor=predictor_plan,
                         predictor_heads=tuple(heads))
    report.seconds = time.monotonic() - started
    return plan, report


def _head(weights: _Weights, name: str, scheme: str) -> torch.nn.Module:
    return quantize.ProductLinear(quantize.SCHEMES[scheme](weights.linear(name)))


def _predictor_heads(weights: _Weights, n: int, scheme: str) -> list[Product]:
    return [quantize.SCHEMES[scheme](weights.linear(f"talker.code_predictor.lm_head.{j}"))
            for j in range(n)]


# -- the check at load, cached -------------------------------------------------------------


def _key(folder: Path, precision: Precision) -> str:
    files = sorted(p for p in Path(folder).glob("*.safetensors"))
    identity = [str(Path(folder).resolve())] + [
        f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files]
    parts = identity + [precision.talker, precision.predictor, precision.cpu_class,
                        str(precision.auto), torch.__version__, str(VERSION),
                        json.dumps([BOUNDS, HEAD_BOUNDS, STACK_BOUNDS])]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:20]


def apply(folder: Path, model, plan: ModelPlan, moved: list[Move],
          smoothed: Sequence[Smoothed] = (),
          ranges: dict[tuple[str, int], smoothing.Ranges] | None = None) -> ModelPlan:
    """Redo a check's conversions and smoothings (from its cached result) without
    measuring."""
    talker, weights = model.talker, _Weights(Path(folder))
    stacks = {TALKER: ("talker.model.layers", talker.model.layers),
              PREDICTOR: ("talker.code_predictor.model.layers",
                          talker.code_predictor.model.layers)}
    final: dict[tuple[str, int], str] = {}
    heads: list[Product] = list(plan.predictor_heads)
    for m in moved:
        if m.what == CODEC_HEAD:
            talker.codec_head = _head(weights, "talker.codec_head", m.new)
        elif m.what == PREDICTOR_HEADS:
            heads = _predictor_heads(weights, len(heads), m.new)
        elif m.layer is not None:
            final[(m.what, m.layer)] = m.new  # a layer may move twice: the last one counts
    replaced: dict[str, dict[int, Layer]] = {TALKER: {}, PREDICTOR: {}}
    alphas = {(m.what, m.layer): m.alpha for m in smoothed}
    current = {TALKER: plan.talker, PREDICTOR: plan.predictor}
    for what, i in set(final) | set(alphas):
        prefix, layers = stacks[what]
        scheme = final.get((what, i), current[what].layers[i].scheme)
        smooth = ((ranges or {})[(what, i)], alphas[(what, i)]) if (what, i) in alphas \
            else None
        replaced[what][i] = weights.layer(f"{prefix}.{i}", layers[i], scheme, smooth)
    return ModelPlan(talker=plan.talker.replace_layers(replaced[TALKER]),
                     predictor=plan.predictor.replace_layers(replaced[PREDICTOR]),
                     predictor_heads=tuple(heads))


def _serving(plan: ModelPlan) -> str:
    return f"serving talker {plan.talker.scheme}, code predictor {plan.predictor.scheme}"


def check(folder: Path, model, tokenizer, plan: ModelPlan, precision: Precision,
          data_dir: Path | None) -> ModelPlan:
    """The first-load faithfulness check (module docstring); returns the plan to serve.

    Logs one line (INFO), e.g.
      Faithfulness of int8 (talker int8-fbgemm, code predictor int8-fbgemm) against float32,
      teacher-forced on 184 tokens (english, german, chinese, japanese) in 9.6 s: talker
      layers <= 0.0546, last hidden 0.0806, codebook-0 logits 0.0836 (greedy codes agree
      75 %); code predictor layers <= 0.0641, ... (80 %); kept every layer; smoothed talker
      layers 0-27 (alpha 0.5); code predictor layers 0-4 (alpha 0.5); serving talker
      int8-fbgemm, code predictor int8-fbgemm
    and "(cached ...)" instead of the measurement on later starts."""
    if precision.talker in ("float32", "bfloat16"):
        return plan  # nothing quantized
    what = (f"{precision.generation} (talker {precision.talker}, code predictor "
            f"{precision.predictor})")
    path = Path(data_dir) / "faithfulness" / f"{_key(folder, precision)}.json" \
        if data_dir is not None else None
    if path is not None and path.is_file():
        try:
            cached = json.loads(path.read_text(encoding="utf-8"))
            moved = [Move(**m) for m in cached["moved"]]
            smoothed = [Smoothed(**m) for m in cached["smoothed"]]
            ranges = _read_ranges(_ranges_path(path), smoothed) if smoothed else {}
            served = apply(folder, model, plan, moved, smoothed, ranges) \
                if moved or smoothed else plan
            _LOGGER.info("Faithfulness of %s against float32 (cached from %s in %s): %s; %s; "
                         "%s", what, cached["date"], path, cached["figures"],
                         describe(moved, smoothed), _serving(served))
            return served
        except (OSError, ValueError, KeyError, TypeError) as err:
            _LOGGER.warning("Ignoring the cached faithfulness result %s: %s", path, err)
    fallback = precision.auto
    served, report = measure(folder, model, tokenizer, plan, fallback=fallback, smooth=True)
    _LOGGER.info("Faithfulness of %s against float32, teacher-forced on %d tokens (%s) in "
                 "%.1f s: %s; %s; %s", what, report.tokens, ", ".join(report.languages),
                 report.seconds, report.figures(), describe(report.moved, report.smoothed),
                 _serving(served))
    if not fallback:
        exceeded = _exceeded(report)
        if exceeded:
            _LOGGER.warning("Out of bounds with --dtype %s (kept, as asked; --dtype auto "
                            "would fall back): %s", precision.generation, "; ".join(exceeded))
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if report.smoothed:  # first: the .json names them, so it is written last
                _write_ranges(_ranges_path(path), report)
            tmp = path.with_suffix(f".tmp{id(report)}")
            tmp.write_text(json.dumps({
                "date": time.strftime("%Y-%m-%d %H:%M"), "folder": str(folder),
                "precision": precision.describe(), "figures": report.figures(),
                "moved": [asdict(m) for m in report.moved],
                "smoothed": [asdict(m) for m in report.smoothed],
                "report": {"talker": asdict(report.talker),
                           "predictor": asdict(report.predictor), "tokens": report.tokens,
                           "languages": report.languages, "seconds": report.seconds},
            }, indent=1) + "\n", encoding="utf-8")
            tmp.replace(path)
        except OSError as err:
            _LOGGER.warning("Could not cache the faithfulness result in %s: %s", path, err)
    return served


def _ranges_path(path: Path) -> Path:
    return path.with_suffix(".ranges.safetensors")


def _write_ranges(path: Path, report: Report) -> None:
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    for m in report.smoothed:
        tensors.update(report.ranges[(m.what, m.layer)].tensors(f"{m.what}/{m.layer}"))
    tmp = path.with_name(f"{path.name}.tmp{id(report)}")
    save_file(tensors, str(tmp))
    tmp.replace(path)


def _read_ranges(path: Path, smoothed: list[Smoothed]
                 ) -> dict[tuple[str, int], smoothing.Ranges]:
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path))
    except Exception as err:  # safetensors raises its own error types for a damaged file
        raise ValueError(f"{path}: {err}") from err
    return {(m.what, m.layer): smoothing.Ranges.from_tensors(tensors, f"{m.what}/{m.layer}")
            for m in smoothed}


def _exceeded(report: Report) -> list[str]:
    out = []
    for name, figures in ((TALKER, report.talker), (PREDICTOR, report.predictor)):
        over = [i for i, r in enumerate(figures.layers)
                if r["error"] > BOUNDS[family(r["scheme"])]]
        if over:
            out.append(f"{name} layers {_ranges(over)} (up to {figures.worst_layer:.4f})")
        if figures.layers:
            bound = STACK_BOUNDS[family(figures.layers[0]["scheme"])]
            if figures.hidden > bound:
                out.append(f"{name} last hidden {figures.hidden:.4f} > {bound}")
    return out
