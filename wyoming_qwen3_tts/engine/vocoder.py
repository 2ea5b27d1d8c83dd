"""Incremental vocoder: frames of codes in, PCM out, with the decoder's state carried over.

The 12 Hz speech tokenizer's decoder is causal all the way through: codebook lookup, causal
convolutions, a sliding-window (72 frames) transformer, transposed convolutions whose overlap
only reaches forward.  So instead of re-decoding a left context with every chunk (what the
library's `chunked_decode` does, at about twice the cost), we keep each layer's state:

- a causal convolution keeps its last `kernel - 1` input samples,
- a transposed convolution keeps the part of its output that overlaps the next chunk,
- the transformer keeps the keys and values of its last 71 frames per layer.

Decoding chunk by chunk then gives the samples of decoding everything at once, up to float
rounding, at the cost of decoding each frame once.  The modules and weights are the
library's; the walk through them mirrors `Qwen3TTSTokenizerV2Decoder.forward`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F


def _kind(module) -> str:
    return type(module).__name__.removeprefix("Qwen3TTSTokenizerV2")


class DecoderState:
    """Runs the library's decoder on consecutive chunks of codes, carrying state between them."""

    def __init__(self, decoder) -> None:
        self.decoder = decoder
        self.window = int(decoder.config.sliding_window)
        self.conv_state: dict[int, torch.Tensor] = {}
        self.overhang: dict[int, torch.Tensor] = {}
        self.keys: list[torch.Tensor | None] = [None] * len(decoder.pre_transformer.layers)
        self.values: list[torch.Tensor | None] = [None] * len(decoder.pre_transformer.layers)
        self.position = 0  # frames decoded so far
        self._snake_params: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def copy(self) -> DecoderState:
        """An independent state to go on from here.  Cheap: the state's tensors are only
        ever replaced, never written in place, so the copies share them."""
        twin = DecoderState.__new__(DecoderState)
        twin.__dict__.update(self.__dict__)
        twin.conv_state, twin.overhang = dict(self.conv_state), dict(self.overhang)
        twin.keys, twin.values = list(self.keys), list(self.values)
        return twin

    # -- SnakeBeta: x + 1/b * sin(a x)^2 ---------------------------------------------------
    def snake(self, module, x: torch.Tensor) -> torch.Tensor:
        """The library's SnakeBeta, with exp(alpha) and 1/(exp(beta) + eps) computed once
        per module instead of on every call, and in-place passes over the (large) signal:
        the same operations in the same order, so the same values."""
        params = self._snake_params.get(id(module))
        if params is None:
            alpha = torch.exp(module.alpha.unsqueeze(0).unsqueeze(-1))
            beta = torch.exp(module.beta.unsqueeze(0).unsqueeze(-1))
            params = (alpha, 1.0 / (beta + module.no_div_by_zero))
            self._snake_params[id(module)] = params
        alpha, inverse_beta = params
        return torch.sin(x * alpha).pow_(2).mul_(inverse_beta).add_(x)

    # -- convolutions ---------------------------------------------------------------------
    def conv(self, module, x: torch.Tensor) -> torch.Tensor:
        """A causal convolution (stride 1): left zero padding the first time, then history."""
        pad = module.padding
        if pad:
            history = self.conv_state.get(id(module))
            if history is None:
                history = x.new_zeros(x.shape[0], x.shape[1], pad)
            x = torch.cat([history, x], dim=-1)
            # a copy: a view would keep the whole chunk's input alive until the next chunk
            # (60 MB over the decoder's convolutions for chunks of 16 frames, 0.6B)
            self.conv_state[id(module)] = x[..., -pad:].clone()
        return _conv1d(module.conv, x)

    def transposed_conv(self, module, x: torch.Tensor) -> torch.Tensor:
        """A causal transposed convolution: overlap-add with the previous chunk's tail."""
        conv = module.conv
        y = _conv_transpose1d(conv, x)
        emitted = x.shape[-1] * conv.stride[0]
        tail = self.overhang.get(id(module))
        if tail is not None:
            y = torch.cat([y[..., : tail.shape[-1]] + tail, y[..., tail.shape[-1]:]], dim=-1)
        rest = y[..., emitted:]
        if rest.shape[-1]:
            bias = conv.bias.view(1, -1, 1) if conv.bias is not None else 0
            self.overhang[id(module)] = rest - bias  # its bias comes again with the next chunk
        return y[..., :emitted]

    def convnext(self, module, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(module.dwconv, x).permute(0, 2, 1)
        h = module.pwconv2(module.act(module.pwconv1(module.norm(h))))
        return x + (module.gamma * h).permute(0, 2, 1)

    def residual_unit(self, module, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(module.conv1, self.snake(module.act1, x))
        return x + self.conv(module.conv2, self.snake(module.act2, h))

    def block(self, module, x: torch.Tensor) -> torch.Tensor:
        for part in module.block:
            kind = _kind(part)
            if kind == "CausalTransConvNet":
                x = self.transposed_conv(part, x)
            elif kind == "DecoderDecoderResidualUnit":
                x = self.residual_unit(part, x)
            else:
                x = self.snake(part, x)
        return x

    # -- the sliding-window transformer ---------------------------------------------------
    def transformer(self, x: torch.Tensor) -> torch.Tensor:
        model = self.decoder.pre_transformer
        t = x.shape[1]
        positions = torch.arange(self.position, self.position + t)
        h = model.input_proj(x)
        cos, sin = model.rotary_emb(h, positions.view(1, -1))
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        for i, layer in enumerate(model.layers):
            attn = layer.self_attn
            r = layer.input_layernorm(h)
            q = attn.q_proj(r).view(1, t, -1, attn.head_dim).transpose(1, 2)
            k = attn.k_proj(r).view(1, t, -1, attn.head_dim).transpose(1, 2)
            v = attn.v_proj(r).view(1, t, -1, attn.head_dim).transpose(1, 2)
            q = q * cos + _rotate_half(q) * sin
            k = k * cos + _rotate_half(k) * sin
            cached_k, cached_v = self.keys[i], self.values[i]
            if cached_k is not None and cached_v is not None:
                k = torch.cat([cached_k, k], dim=2)
                v = torch.cat([cached_v, v], dim=2)
            key_pos = torch.arange(self.position + t - k.shape[2], self.position + t)
            # query at p sees keys in (p - window, p], like transformers' sliding-window mask
            diff = positions.view(-1, 1) - key_pos.view(1, -1)
            mask = (diff >= 0) & (diff < self.window)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=attn.scaling,
                                                 enable_gqa=True)
            self.keys[i] = k[:, :, -(self.window - 1):]
            self.values[i] = v[:, :, -(self.window - 1):]
            h = h + layer.self_attn_layer_scale(attn.o_proj(out.transpose(1, 2).reshape(1, t, -1)))
            h = h + layer.mlp_layer_scale(layer.mlp(layer.post_attention_layernorm(h)))
        self.position += t
        return model.output_proj(model.norm(h))

    # -- the whole decoder ----------------------------------------------------------------
    @torch.inference_mode()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [frames, 16] -> float samples [frames * samples_per_frame]."""
        d = self.decoder
        dtype = next(d.parameters()).dtype
        hidden = _dequantize(d.quantizer, codes.T.unsqueeze(0).clamp(min=0)).to(dtype)
        hidden = self.conv(d.pre_conv, hidden).transpose(1, 2)
        hidden = self.transformer(hidden).permute(0, 2, 1)
        for transposed, convnext in d.upsample:
            hidden = self.convnext(convnext, self.transposed_conv(transposed, hidden))
        # the convolutional decoder a few frames at a time (see TILE_FRAMES)
        steps = TILE_FRAMES * hidden.shape[-1] // codes.shape[0]
        return torch.cat([self.waveform(tile) for tile in hidden.split(steps, dim=-1)])

    def waveform(self, hidden: torch.Tensor) -> torch.Tensor:
        """The decoder's convolutional blocks: upsampled hidden states -> float samples."""
        wav = hidden
        for part in self.decoder.decoder:
            kind = _kind(part)
            if kind == "CausalConvNet":
                wav = self.conv(part, wav)
            elif kind == "DecoderDecoderBlock":
                wav = self.block(part, wav)
            else:
                wav = self.snake(part, wav)
        return wav.clamp(min=-1, max=1)[0, 0].float()


# The convolutional decoder (upsampling x480 to 24 kHz, channels 1536 -> 96) makes the
# largest signals: 12 MB a tensor at its last stage for a chunk of 16 frames in float32, and
# its residual units allocate several at a time.  Each carries its state across calls like a
# chunk boundary, so it runs TILE_FRAMES frames at a time: the same samples, a working set a
# quarter the size, whose buffers the allocator then reuses from chunk to chunk instead of
# mapping fresh pages every time (loader._tune_allocator).
TILE_FRAMES = 4

# -- the decoder's large-weight convolutions as matrix products -------------------------------
# At the low frame rates (the first stages) the convolutions have large weights (up to 1536 x
# 768 x 16) and short inputs (a few frames).  oneDNN then spends most of a call preparing
# the weights (measured: 28 ms of a 1-frame call for the 1536->768 transposed convolution),
# so every chunk paid ~70 ms before any sample.  As a product with the weight as it is
# stored (a view, no copy) the same sums cost a fraction of that; the high-rate stages
# (small weights, long signals) stay with oneDNN, which is faster there.
MATMUL_MIN_WEIGHT = 1_000_000  # weight elements


def _conv1d(conv: torch.nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """conv(x) for an (already padded) x [1, C_in, T]; stride 1."""
    weight = conv.weight
    if conv.groups != 1 or conv.stride[0] != 1 or weight.numel() < MATMUL_MIN_WEIGHT \
            or x.shape[0] != 1:
        return conv(x)
    c_out, c_in, k = weight.shape
    d = conv.dilation[0]
    length = x.shape[-1] - (k - 1) * d
    # columns [C_in, k, T_out]: the inputs each output sample sees, in the weight's order
    cols = torch.stack([x[0, :, j * d: j * d + length] for j in range(k)], dim=1)
    y = weight.view(c_out, c_in * k) @ cols.view(c_in * k, length)
    if conv.bias is not None:
        y += conv.bias.view(-1, 1)
    return y.unsqueeze(0)


def _conv_transpose1d(conv: torch.nn.ConvTranspose1d, x: torch.Tensor) -> torch.Tensor:
    """conv(x) for x [1, C_in, T] (no padding): each input sample times the weight gives
    k output samples; those of neighbouring inputs overlap (k = m * stride) and are added."""
    weight = conv.weight  # [C_in, C_out, k]
    c_in, c_out, k = weight.shape
    s = conv.stride[0]
    if weight.numel() < MATMUL_MIN_WEIGHT or k % s or x.shape[0] != 1 or conv.groups != 1 \
            or conv.padding[0] or conv.output_padding[0] or conv.dilation[0] != 1:
        return conv(x)
    m, t = k // s, x.shape[-1]
    z = (x[0].T @ weight.view(c_in, c_out * k)).view(t, c_out, m, s)
    y = z.new_zeros(t + m - 1, c_out, s)
    for p in range(m):
        y[p: p + t] += z[:, :, p]
    y = y.permute(1, 0, 2).reshape(c_out, (t + m - 1) * s)
    if conv.bias is not None:
        y += conv.bias.view(-1, 1)
    return y.unsqueeze(0)


def _dequantize(quantizer, codes: torch.Tensor) -> torch.Tensor:
    """The library's SplitResidualVectorQuantizer.decode, dividing only the rows the codes
    pick (embedding_sum[c] / usage[c]) instead of each codebook's whole table on every call
    (16 divisions of 2048 x 256 per chunk) and without keeping a divided copy of the tables
    (17 MB in bfloat16, 34 MB in float32): the same divisions of the same numbers, so the same
    values.  codes: [1, 16, T]."""
    def rows(codebook, layer_codes: torch.Tensor) -> torch.Tensor:
        usage = codebook.cluster_usage.clamp(min=codebook.epsilon)
        return F.embedding(layer_codes, codebook.embedding_sum) / \
            F.embedding(layer_codes, usage[:, None])

    def residual(rvq, part: torch.Tensor) -> torch.Tensor:
        total = torch.zeros([1], device=part.device)[0]
        for layer, layer_codes in zip(rvq.vq.layers, part.transpose(0, 1), strict=False):
            quantized = rows(layer._codebook, layer_codes)
            total = total + layer.project_out(quantized).transpose(1, 2)
        return rvq.output_proj(total)

    first = quantizer.n_q_semantic
    quantized = residual(quantizer.rvq_first, codes[:, :first])
    if codes.shape[1] > first:
        quantized += residual(quantizer.rvq_rest, codes[:, first:])
    return quantized


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class StreamingVocoder:
    """Collects frames and decodes them in chunks; the first chunk is small so audio starts
    early, later ones larger because every decoder call has a fixed cost."""

    def __init__(self, decoder, schedule: Sequence[int] = (3, 8, 16),
                 state: DecoderState | None = None) -> None:
        # `state`: where to go on from, e.g. after a cloned voice's reference codes
        self.state = state if state is not None else DecoderState(decoder)
        self.samples_per_frame = int(decoder.total_upsample)
        self.schedule = list(schedule)
        self._pending: list[torch.Tensor] = []
        self._chunks_done = 0

    def _decode(self) -> np.ndarray:
        wav = self.state.decode(torch.stack(self._pending)).numpy()
        self._pending = []
        self._chunks_done += 1
        return wav

    def push(self, frame: torch.Tensor) -> np.ndarray | None:
        """Add one frame [16]; returns float samples when a chunk is complete."""
        self._pending.append(frame)
        size = self.schedule[min(self._chunks_done, len(self.schedule) - 1)]
        return self._decode() if len(self._pending) >= size else None

    def flush(self) -> np.ndarray | None:
        """Decode what is left at the end of the utterance."""
        return self._decode() if self._pending else None


def to_pcm16(samples: np.ndarray) -> bytes:
    """Float samples in [-1, 1] to 16-bit little-endian PCM."""
    return (np.clip(samples, -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes()


def stream_pcm(frames: Iterator[torch.Tensor], vocoder: StreamingVocoder) -> Iterator[bytes]:
    for frame in frames:
        wav = vocoder.push(frame)
        if wav is not None and len(wav):
            yield to_pcm16(wav)
    wav = vocoder.flush()
    if wav is not None and len(wav):
        yield to_pcm16(wav)
