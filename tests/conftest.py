"""Shared pytest fixtures."""

from __future__ import annotations

import functools
import shutil
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DEVMODELS = REPO / ".cache" / "devmodels"  # git-ignored: checkpoints never go elsewhere in the tree


@functools.cache
def tiny_model_dir(model_type: str) -> Path:
    """A tiny random checkpoint (``custom_voice``, ``voice_design`` or ``base``), built once.

    It lives in ``.cache/devmodels/tiny-<type>-v<BUILDER_VERSION>/`` and is reused by later runs
    and by other processes.  It is built in a temporary folder and renamed into place, so that
    folder only ever exists complete; when two processes build at once, the first rename wins.
    """
    from wyoming_qwen3_tts.devmodel import BUILDER_VERSION, build_checkpoint

    final = DEVMODELS / f"tiny-{model_type}-v{BUILDER_VERSION}"
    if not final.is_dir():
        DEVMODELS.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=DEVMODELS))
        try:
            built = build_checkpoint(tmp / "checkpoint", model_type, "tiny")
            try:
                built.rename(final)
            except OSError:  # another process got there first
                if not final.is_dir():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return final


@pytest.fixture(scope="session")
def tiny_custom_voice() -> Path:
    return tiny_model_dir("custom_voice")


@pytest.fixture(scope="session")
def tiny_voice_design() -> Path:
    return tiny_model_dir("voice_design")


@pytest.fixture(scope="session")
def tiny_base() -> Path:
    return tiny_model_dir("base")
