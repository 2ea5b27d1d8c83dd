"""Our decode loop: talker step, then 15 code-predictor steps, one frame of 16 codes at a time.

Written in the spirit of gpt-fast: the library's modules are used for every weight (so float32,
bfloat16 and int8-quantized linears all work unchanged), while the loop, the KV caches, the rotary
tables, the attention call and the sampling are ours.  That removes Hugging Face `generate` from
the per-frame path (a `generate` call per frame for the code predictor, cache objects, mask
building) and lets the caller take each frame the moment it exists.

Greedy decoding reproduces the library's `generate_*` code for code (tests/test_engine.py).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .prompt import Prompt
from .quantize import Layer, ModelPlan, StackPlan, product_of


@dataclass
class Sampling:
    """Sampling settings; defaults come from the checkpoint's generation_config.json."""

    do_sample: bool = True
    top_k: int = 50
    top_p: float = 1.0
    temperature: float = 0.9
    repetition_penalty: float = 1.05
    subtalker_dosample: bool = True
    subtalker_top_k: int = 50
    subtalker_top_p: float = 1.0
    subtalker_temperature: float = 0.9

    @classmethod
    def from_generation_config(cls, config: dict | None, **overrides) -> Sampling:
        fields = cls.__dataclass_fields__
        values = {k: v for k, v in (config or {}).items() if k in fields}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def sample(logits: torch.Tensor, do_sample: bool, top_k: int, top_p: float,
           temperature: float, generator: torch.Generator | None = None) -> int:
    """Pick one token from float32 logits [vocab], as transformers' warpers do (temperature,
    top-k, top-p, then a draw), but drawing among the k best only: a third of the time of
    masking and drawing over the whole vocabulary, 16 times a frame.  (Logits tied with the
    k-th are all kept by transformers, exactly k here: a difference only for exact ties.)"""
    if not do_sample:
        return int(torch.argmax(logits))
    k = top_k if top_k and 0 < top_k < logits.shape[-1] else logits.shape[-1]
    values, ids = torch.topk(logits, k)  # best first
    if temperature and temperature != 1.0:
        values = values / temperature
    probs = values.softmax(-1)
    if top_p is not None and top_p < 1.0:
        # keep the smallest best-first set whose mass reaches top_p (the best always stays)
        probs = probs.masked_fill(probs.cumsum(-1) - probs >= top_p, 0.0)
    # the draw by inverse CDF: one uniform number against the running sum of the k
    # probabilities (torch.multinomial's setup cost 30-120 us a call, 16 calls a frame);
    # a token of probability 0 never takes a step of the running sum, so it is never drawn
    cumulative = probs.cumsum(-1)
    u = torch.rand((), generator=generator) * cumulative[-1]
    i = int(torch.searchsorted(cumulative, u, right=True))
    return int(ids[min(i, int((probs > 0).sum()) - 1)])


class KVCache:
    """Preallocated keys and values of one transformer stack, reused across requests.

    Uninitialised (torch.empty): positions are always written before they are read (the
    torch path slices [:end], kernels.c reads positions 0..pos), and memory pages nobody has
    written are not resident, so the cache's resident size follows the positions used, not
    its capacity."""

    def __init__(self, layers: int, kv_heads: int, head_dim: int, length: int, dtype) -> None:
        shape = (layers, 1, kv_heads, length, head_dim)
        self.k = torch.empty(shape, dtype=dtype)
        self.v = torch.empty(shape, dtype=dtype)

    @property
    def length(self) -> int:
        return self.k.shape[3]


class Stack:
    """A decoder stack (talker or code predictor) as described by quantize.StackPlan, driven by
    our own forward: one path for every precision."""

    def __init__(self, plan: StackPlan, initial_length: int, kernels=None) -> None:
        self.plan = plan
        self.initial_length = initial_length
        self.layers = plan.layers
        self.head_dim = plan.head_dim
        self.kv_heads = plan.kv_heads
        self.dtype = plan.activations
        self.cache = KVCache(len(self.layers), self.kv_heads, self.head_dim, initial_length,
                             self.dtype)
        self.cos = self.sin = torch.empty(0)
        self._rope_table(initial_length)
        # one token at a time through kernels.c (float32 activations, not the reference path)
        self._fused = FusedStep(self, kernels) if kernels and FusedStep.supports(plan) else None

    def _rope_table(self, length: int) -> None:
        """cos/sin for positions [0, length), computed by the library's own rotary module.

        The talker's multimodal rope gets three identical position rows for speech, so its
        sections all pick the same values: the first row is the table.
        """
        positions = torch.arange(length).view(1, -1)
        probe = torch.empty(1, dtype=self.dtype)
        if self.plan.multimodal:
            cos, sin = self.plan.rotary(probe, positions.view(1, 1, -1).expand(3, 1, -1))
            cos, sin = cos[0], sin[0]
        else:
            cos, sin = self.plan.rotary(probe, positions)
        self.cos, self.sin = cos[0].contiguous(), sin[0].contiguous()  # [length, head_dim]
        # rotate_half(x) * sin == swap_halves(x) * sin_signed, with one op fewer and exact
        half = self.sin.shape[-1] // 2
        self.sin_signed = torch.cat((-self.sin[:, :half], self.sin[:, half:]), dim=-1)

    def reserve(self, length: int) -> None:
        """Make sure positions [0, length) fit; grows (never shrinks) the cache and tables."""
        if length <= self.cache.length:
            return
        length = max(length, 2 * self.cache.length)
        old = self.cache
        self.cache = KVCache(len(self.layers), self.kv_heads, self.head_dim, length, self.dtype)
        self.cache.k[:, :, :, : old.length] = old.k
        self.cache.v[:, :, :, : old.length] = old.v
        self._rope_table(length)

    def release(self) -> None:
        """Shrink back to the initial length after a longer utterance: a server that once
        spoke a long sentence keeps no cache for it (0.23 MB per position for the 0.6B
        talker in float32)."""
        if self.cache.length > self.initial_length:
            self.cache = KVCache(len(self.layers), self.kv_heads, self.head_dim,
                                 self.initial_length, self.dtype)
            self._rope_table(self.initial_length)

    def forward(self, x: torch.Tensor, pos: int) -> torch.Tensor:
        """Run x [1, T, hidden] at positions pos..pos+T-1; returns the normed hidden states.

        With a float32 plan this is the library's arithmetic operation for operation (the
        q and k heads normed and rotated together: elementwise, so the same values)."""
        t = x.shape[1]
        self.reserve(pos + t)
        if self._fused is not None and t <= self._fused.max_tokens:
            return self._fused(x, pos)
        if t > 1 and pos > 0:  # our loop never does this: attention below assumes it
            raise ValueError("several tokens at once only for the prefill, from position 0")
        end = pos + t
        cos = self.cos[pos:end].view(1, 1, t, -1)
        sin = self.sin_signed[pos:end].view(1, 1, t, -1)
        for i, layer in enumerate(self.layers):
            x = self.layer(i, layer, x, pos, cos, sin)
        return self.plan.norm(x)

    def layer(self, i: int, layer: Layer, x: torch.Tensor, pos: int, cos: torch.Tensor,
              sin: torch.Tensor) -> torch.Tensor:
        """Layer i (described by `layer`: this stack's own or another plan's) on x [1, T,
        hidden] at positions pos.., with torch operations; writes the cache's layer i.
        cos and sin: the rows of those positions, [1, 1, T, head_dim]."""
        t = x.shape[1]
        end = pos + t
        d, heads, kv = self.head_dim, self.plan.heads, self.kv_heads
        q_size, k_size, v_size = layer.qkv_split
        qk, v = layer.qkv(layer.input_norm(x)).split([q_size + k_size, v_size], dim=-1)
        qk = layer.qk_norm(qk.view(1, t, heads + kv, d)).transpose(1, 2)
        qk = qk * cos + _swap_halves(qk) * sin
        q, k = qk.split([heads, kv], dim=1)
        self.cache.k[i, :, :, pos:end] = k
        self.cache.v[i, :, :, pos:end] = v.view(1, t, kv, d).transpose(1, 2)
        keys = self.cache.k[i, :, :, :end]
        values = self.cache.v[i, :, :, :end]
        # prefill from position 0 is plain causal; one new token sees everything cached
        out = F.scaled_dot_product_attention(
            q, keys, values, is_causal=(t > 1 and pos == 0), scale=layer.scaling,
            enable_gqa=True,
        )
        x = x + layer.o(out.transpose(1, 2).reshape(1, t, -1))
        gate, up = layer.gate_up(layer.post_norm(x)).chunk(2, dim=-1)
        return x + layer.down(F.silu(gate) * up)

    def rope(self, pos: int, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin rows of positions pos..pos+t-1, as Stack.layer takes them."""
        self.reserve(pos + t)
        return (self.cos[pos:pos + t].view(1, 1, t, -1),
                self.sin_signed[pos:pos + t].view(1, 1, t, -1))


class FusedStep:
    """Stack.forward for a few tokens, with kernels.c between the four products a layer:

        h = norm(x); qkv = W_qkv h; att = attend(qkv)      (q/k norm, rope, cache, softmax)
        x += W_o att; h = norm(x); a = silu_mul(W_gu h); x += W_down a; h = norm(x) ...

    The same arithmetic as Stack.forward's torch operations, in float32, in 4 calls a layer
    instead of ~40 (each torch call costs microseconds of dispatch).  Used for single steps,
    the code predictor's 2-token start and prompts up to `max_tokens`: measured on the 0.6B
    talker, a 45-token prefill takes 120 ms against 147 ms with torch; beyond ~200 tokens
    (long cloned-voice prompts) torch's attention, which uses every core, wins.  Pointers
    into the KV cache are rebound whenever the stack grows or shrinks it.  Each product is
    called as its op with its arguments (for fbgemm int8: `quantized::linear_dynamic`).
    """

    max_tokens = 160

    def __init__(self, stack: Stack, kernels) -> None:
        plan = stack.plan
        self.stack, self.kernels = stack, kernels
        self.hidden, self.inter, self.heads = plan.hidden, plan.intermediate, plan.heads
        self.norms = [(layer.input_norm.weight.data_ptr(), layer.input_norm.eps,
                       layer.post_norm.weight.data_ptr(), layer.post_norm.eps)
                      for layer in plan.layers]
        self.final_norm = (plan.norm.weight.data_ptr(), plan.norm.eps)
        self.products = [tuple((p.op, p.args) for p in layer.products) for layer in plan.layers]
        self.bound_to: KVCache | None = None

    @staticmethod
    def supports(plan: StackPlan) -> bool:
        """kernels.c computes in float32 with float32 norm weights [hidden]; the reference
        (float32) plan keeps the library's arithmetic and never runs here."""
        def norm_ok(norm) -> bool:
            return norm.weight.dtype == torch.float32 and norm.weight.is_contiguous()

        return not plan.exact and plan.activations == torch.float32 and norm_ok(plan.norm) \
            and all(norm_ok(layer.input_norm) and norm_ok(layer.post_norm)
                    and norm_ok(layer.qk_norm) and layer.qkv_split[1] == layer.qkv_split[2]
                    for layer in plan.layers)

    def _bind(self) -> None:
        from .kernels import Attention

        stack, cache = self.stack, self.stack.cache
        # attention weights of the q heads that share a kv head
        self.scratch = torch.empty(self.heads // stack.kv_heads, cache.length)
        self.attention = [
            Attention(layer.qk_norm.weight.data_ptr(), cache.k[i].data_ptr(),
                      cache.v[i].data_ptr(), self.scratch.data_ptr(), self.heads,
                      stack.kv_heads, stack.head_dim, cache.length, layer.qk_norm.eps,
                      layer.scaling)
            for i, layer in enumerate(stack.layers)
        ]
        self.bound_to = cache

    def __call__(self, x: torch.Tensor, pos: int) -> torch.Tensor:
        stack, k = self.stack, self.kernels
        if self.bound_to is not stack.cache:
            self._bind()
        t, hidden = x.shape[1], self.hidden
        if pos + t > stack.cache.length:  # the kernels write the cache unchecked
            raise ValueError(f"positions up to {pos + t} do not fit the cache "
                             f"({stack.cache.length}): reserve() first")
        residual = x.to(torch.float32, copy=True).contiguous()
        h = torch.empty(1, t, hidden)
        att = torch.empty(1, t, self.heads * stack.head_dim)
        act = torch.empty(1, t, self.inter)
        out = torch.empty(1, t, hidden)
        x_p, h_p, att_p, act_p = (residual.data_ptr(), h.data_ptr(), att.data_ptr(),
                                  act.data_ptr())
        cos_p, sin_p = stack.cos.data_ptr(), stack.sin_signed.data_ptr()
        last = len(stack.layers) - 1
        k.rms_norm(h_p, x_p, self.norms[0][0], hidden, self.norms[0][1], t)
        for i, ((qkv, qkv_a), (o, o_a), (gate_up, gate_up_a), (down, down_a)) in \
                enumerate(self.products):
            _, _, post_w, post_eps = self.norms[i]
            qkv_out = qkv(h, *qkv_a)
            k.attend(self.attention[i], qkv_out.data_ptr(), cos_p, sin_p, pos, t, att_p)
            y = o(att, *o_a)
            k.add_rms_norm(x_p, y.data_ptr(), h_p, post_w, hidden, post_eps, t)
            gu = gate_up(h, *gate_up_a)
            k.silu_mul(act_p, gu.data_ptr(), self.inter, t)
            y = down(act, *down_a)
            next_w, next_eps = self.final_norm if i == last else self.norms[i + 1][:2]
            k.add_rms_norm(x_p, y.data_ptr(), out.data_ptr() if i == last else h_p,
                           next_w, hidden, next_eps, t)
        return out


def _swap_halves(x: torch.Tensor) -> torch.Tensor:
    """[x1, x2] -> [x2, x1] along the last dimension (rotate_half without the sign)."""
    return x.unflatten(-1, (2, -1)).flip(-2).flatten(-2)


@dataclass
class FrameStats:
    frames: int = 0
    hit_cap: bool = False
    stopped_at_eos: bool = False
    cancelled: bool = False


class FrameGenerator:
    """Generates frames (16 codes each) for one prompt at a time."""

    def __init__(self, model, plan: ModelPlan, sampling: Sampling, kernels=None) -> None:
        talker = model.talker
        tcfg = model.config.talker_config
        self.talker = talker
        self.predictor = talker.code_predictor
        self.sampling = sampling
        self.dtype = plan.talker.activations
        self.groups = tcfg.num_code_groups
        self.eos = tcfg.codec_eos_token_id
        vocab = tcfg.vocab_size
        # the library suppresses the top 1024 codec ids (control tokens) except EOS
        self.suppress = torch.tensor([i for i in range(vocab - 1024, vocab) if i != self.eos])
        self.min_frames_before_eos = 2  # the library's min_new_tokens
        # positions for a prompt and a sentence's frames (about 30 + 150, resident only as
        # used); longer utterances grow the cache for themselves only (release)
        self.talker_stack = Stack(plan.talker, initial_length=512, kernels=kernels)
        self.predictor_stack = Stack(plan.predictor, initial_length=self.groups + 1,
                                     kernels=kernels)
        self.codec_embedding = talker.get_input_embeddings()
        self.sub_embeddings = self.predictor.get_input_embeddings()
        self.project = self.predictor.small_to_mtp_projection
        # the code predictor's 15 heads and the codec head, as products (int8: the op, no
        # module __call__; float32 on aarch64: without oneDNN, quantize.FLOAT_LINEAR)
        self._heads = plan.predictor_heads
        self._codec_head = product_of(talker.codec_head)
        self.generator: torch.Generator | None = None

    # -- one talker code ------------------------------------------------------------------
    def _first_code(self, logits: torch.Tensor, history: list[int]) -> int:
        s = self.sampling
        logits = logits.float().clone()
        if s.repetition_penalty != 1.0 and history:
            seen = torch.tensor(sorted(set(history)))
            score = logits[seen]
            logits[seen] = torch.where(score < 0, score * s.repetition_penalty,
                                       score / s.repetition_penalty)
        logits[self.suppress] = float("-inf")
        if len(history) < self.min_frames_before_eos:
            logits[self.eos] = float("-inf")
        return sample(logits, s.do_sample, s.top_k, s.top_p, s.temperature, self.generator)

    # -- the 15 other codes ---------------------------------------------------------------
    def _other_codes(self, talker_hidden: torch.Tensor, first_embed: torch.Tensor) -> list[int]:
        s, stack = self.sampling, self.predictor_stack
        x = self.project(torch.cat((talker_hidden, first_embed), dim=1))
        h = stack.forward(x, 0)
        codes = []
        for j in range(self.groups - 1):
            logits = self._heads[j](h[:, -1]).float()[0]
            code = sample(logits, s.subtalker_dosample, s.subtalker_top_k, s.subtalker_top_p,
                          s.subtalker_temperature, self.generator)
            codes.append(code)
            if j + 1 < self.groups - 1:
                h = stack.forward(self.project(self._embed(self.sub_embeddings[j], code)), j + 2)
        return codes

    def _embed(self, table: torch.nn.Embedding, code: int) -> torch.Tensor:
        """table(tensor([[code]])) as one indexing op: [1, 1, dim] in our dtype."""
        return table.weight[code].view(1, 1, -1).to(self.dtype)

    @torch.inference_mode()
    def frames(self, prompt: Prompt, max_frames: int, cancel: threading.Event | None = None,
               stats: FrameStats | None = None) -> Iterator[torch.Tensor]:
        """Yield frames as LongTensor [16] until EOS, `max_frames`, or `cancel`."""
        stats = stats if stats is not None else FrameStats()
        stack = self.talker_stack
        prompt_len = prompt.embeds.shape[1]
        # the cache grows as positions are reached (forward reserves): a sentence's frame cap
        # is a bound, not a forecast, and reserving it would hold memory for frames never made
        h = stack.forward(prompt.embeds.to(self.dtype), 0)[:, -1:]
        pos = prompt_len
        history: list[int] = []
        trailing = prompt.trailing_text.to(self.dtype)
        pad = prompt.tts_pad.to(self.dtype)
        try:
            while True:
                if cancel is not None and cancel.is_set():
                    stats.cancelled = True
                    return
                logits = self._codec_head(h)[0, -1]
                first = self._first_code(logits, history)
                if first == self.eos:
                    stats.stopped_at_eos = True
                    return
                if stats.frames >= max_frames:
                    stats.hit_cap = True
                    return
                first_embed = self._embed(self.codec_embedding, first)
                others = self._other_codes(h, first_embed)
                history.append(first)
                stats.frames += 1
                yield torch.tensor([first, *others])
                # next talker input: the sum of the frame's 16 code embeddings + text
                step = len(history) - 1
                embeds = [first_embed] + [self._embed(self.sub_embeddings[i], c)
                                          for i, c in enumerate(others)]
                x = torch.cat(embeds, dim=1).sum(1, keepdim=True)
                x = x + (trailing[:, step:step + 1] if step < trailing.shape[1] else pad)
                h = stack.forward(x, pos)
                pos += 1
        finally:
            stack.release()
