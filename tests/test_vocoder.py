"""The vocoder's own forms of the decoder's parts against the library's (vocoder.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_engine import GREEDY, TEXT, load, our_codes

from wyoming_qwen3_tts.engine import vocoder
from wyoming_qwen3_tts.engine.vocoder import StreamingVocoder


@pytest.mark.parametrize("c_in,c_out,k,dilation,length", [
    (1024, 1536, 7, 1, 10), (768, 768, 7, 9, 70), (512, 1024, 3, 1, 4), (96, 96, 1, 1, 50)])
def test_conv_as_product(c_in, c_out, k, dilation, length, monkeypatch):
    monkeypatch.setattr(vocoder, "MATMUL_MIN_WEIGHT", 0)  # small ones too
    torch.manual_seed(0)
    conv = torch.nn.Conv1d(c_in, c_out, k, dilation=dilation)
    x = torch.randn(1, c_in, length + (k - 1) * dilation)
    with torch.inference_mode():
        torch.testing.assert_close(vocoder._conv1d(conv, x), conv(x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("c_in,c_out,k,stride,length", [
    (1536, 768, 16, 8, 4), (768, 384, 10, 5, 32), (1024, 1024, 2, 2, 3)])
def test_transposed_conv_as_product(c_in, c_out, k, stride, length):
    torch.manual_seed(0)
    conv = torch.nn.ConvTranspose1d(c_in, c_out, k, stride=stride)
    assert conv.weight.numel() >= vocoder.MATMUL_MIN_WEIGHT
    x = torch.randn(1, c_in, length)
    with torch.inference_mode():
        torch.testing.assert_close(vocoder._conv_transpose1d(conv, x), conv(x),
                                   rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def custom(tiny_custom_voice, tmp_path_factory):
    return load(tiny_custom_voice, tmp_path_factory, **GREEDY)


def test_codebooks_are_the_librarys(custom):
    codes = torch.randint(0, 2048, (1, 16, 9))
    with torch.inference_mode():
        expected = custom.decoder.quantizer.decode(codes)
        assert torch.equal(vocoder._dequantize(custom.decoder.quantizer, codes), expected)
        assert torch.equal(vocoder._dequantize(custom.decoder.quantizer, codes), expected)
    # no divided copy of the tables is kept; a new dtype is followed
    quantizer = custom.decoder.quantizer
    assert not hasattr(quantizer.rvq_first.vq.layers[0]._codebook, "_decode_table")
    try:
        quantizer.to(torch.float64)
        with torch.inference_mode():
            again = vocoder._dequantize(quantizer, codes)
        assert again.dtype == torch.float64
        torch.testing.assert_close(again.float(), expected)
    finally:
        quantizer.to(torch.float32)


def test_streaming_with_every_convolution_as_product(custom, monkeypatch):
    """The tiny decoder's weights are all below the size where products take over: force
    them, and the streamed samples still equal the library's whole decoding."""
    monkeypatch.setattr(vocoder, "MATMUL_MIN_WEIGHT", 0)
    codes = our_codes(custom, TEXT, 30, speaker="Ryan")
    with torch.inference_mode():
        whole = custom.decoder(codes.T.unsqueeze(0))[0, 0].float().numpy()
    stream = StreamingVocoder(custom.decoder, schedule=(1, 4, 7))
    parts = [w for w in (stream.push(f) for f in codes) if w is not None]
    parts.append(stream.flush())
    streamed = np.concatenate([p for p in parts if p is not None])
    np.testing.assert_allclose(streamed, whole, atol=1e-4)
    assert np.sqrt(np.mean(whole ** 2)) > 1e-2


@pytest.mark.parametrize("tile", [1, 3, 16])
def test_convolutional_decoder_in_tiles(custom, monkeypatch, tile):
    """The convolutional decoder run a few frames at a time (vocoder.TILE_FRAMES, any size,
    also one that does not divide the chunk) gives whole decoding's samples."""
    monkeypatch.setattr(vocoder, "TILE_FRAMES", tile)
    codes = our_codes(custom, TEXT, 20, speaker="Ryan")
    with torch.inference_mode():
        whole = custom.decoder(codes.T.unsqueeze(0))[0, 0].float().numpy()
    stream = StreamingVocoder(custom.decoder, schedule=(3, 8))
    parts = [w for w in (stream.push(f) for f in codes) if w is not None]
    parts.append(stream.flush())
    streamed = np.concatenate([p for p in parts if p is not None])
    assert streamed.shape == whole.shape
    np.testing.assert_allclose(streamed, whole, atol=1e-4)
