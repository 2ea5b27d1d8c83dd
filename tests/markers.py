"""Skip marks the engine tests share: what this machine's torch can load."""

from __future__ import annotations

import pytest


def no_int8() -> str:
    """Why `--dtype int8` cannot load on this machine (e.g. aarch64: no fbgemm), or ''."""
    from wyoming_qwen3_tts.engine.precision import choose_precision

    try:
        choose_precision("int8")
    except ValueError as err:
        return str(err)
    return ""


needs_int8 = pytest.mark.skipif(bool(no_int8()), reason=f"no int8 here: {no_int8()}")
