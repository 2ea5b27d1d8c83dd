"""decoding.sample draws from the distribution transformers' warpers define."""

from __future__ import annotations

import pytest
import torch
from transformers.generation.logits_process import (
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from wyoming_qwen3_tts.engine.decoding import sample


def warped_probs(logits: torch.Tensor, top_k: int, top_p: float, temperature: float):
    scores = logits[None].clone()
    for warper in (TemperatureLogitsWarper(temperature), TopKLogitsWarper(top_k),
                   TopPLogitsWarper(top_p)):
        scores = warper(None, scores)
    return scores.softmax(-1)[0]


@pytest.mark.parametrize("top_k,top_p,temperature", [(5, 1.0, 0.9), (8, 0.7, 1.3), (0, 0.5, 1.0)])
def test_sampling_matches_transformers_warpers(top_k, top_p, temperature):
    torch.manual_seed(0)
    logits = torch.randn(24) * 2
    expected = warped_probs(logits, top_k or 24, top_p, temperature)
    generator = torch.Generator().manual_seed(1)
    draws = 20000
    counts = torch.bincount(torch.tensor([
        sample(logits, True, top_k, top_p, temperature, generator) for _ in range(draws)
    ]), minlength=24).float() / draws
    assert torch.equal(counts > 0, expected > 0)  # exactly the tokens the warpers keep
    assert float((counts - expected).abs().max()) < 0.015


def test_greedy_is_argmax():
    logits = torch.randn(50)
    assert sample(logits, False, 5, 0.5, 0.7) == int(logits.argmax())
