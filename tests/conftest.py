"""Shared pytest fixtures: the tiny random checkpoints (built once, kept in .cache/devmodels)."""

from __future__ import annotations

from pathlib import Path

import pytest

from wyoming_qwen3_tts.dev.checkpoints import cached_checkpoint
from wyoming_qwen3_tts.dev.serverproc import servers


@pytest.fixture(scope="session")
def tiny_custom_voice() -> Path:
    return cached_checkpoint("custom_voice")


@pytest.fixture(scope="session")
def tiny_voice_design() -> Path:
    return cached_checkpoint("voice_design")


@pytest.fixture(scope="session")
def tiny_base() -> Path:
    return cached_checkpoint("base")


@pytest.fixture(scope="module")
def start_server():
    """start(*args) -> ServerProcess; the module's servers are stopped after its tests."""
    with servers() as start:
        yield start


@pytest.fixture
def start_fresh():
    """start(*args) -> ServerProcess; stopped after the test."""
    with servers() as start:
        yield start
