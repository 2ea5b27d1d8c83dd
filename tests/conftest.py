"""Shared pytest fixtures: the tiny random checkpoints (built once, kept in .cache/devmodels)."""

from __future__ import annotations

from pathlib import Path

import pytest

from wyoming_qwen3_tts.dev.checkpoints import cached_checkpoint


@pytest.fixture(scope="session")
def tiny_custom_voice() -> Path:
    return cached_checkpoint("custom_voice")


@pytest.fixture(scope="session")
def tiny_voice_design() -> Path:
    return cached_checkpoint("voice_design")


@pytest.fixture(scope="session")
def tiny_base() -> Path:
    return cached_checkpoint("base")
