"""Smoke test: import the engine, build the fused C kernels, load the tiny random checkpoint
with --dtype auto and speak a sentence.  Exit status 0 only if audible audio came out.

    script/aarch64 --cpu a72 -- python3 script/aarch64.d/speak.py
"""

from __future__ import annotations

import platform
import sys
import tempfile
import time

import numpy as np


def main() -> int:
    start = time.monotonic()
    import torch

    from wyoming_qwen3_tts.dev.checkpoints import cached_checkpoint
    from wyoming_qwen3_tts.engine import kernels
    from wyoming_qwen3_tts.engine.engine import Engine
    from wyoming_qwen3_tts.engine.precision import cpu_flags

    print(f"{platform.machine()}, torch {torch.__version__}, CPU features: "
          f"{' '.join(sorted(cpu_flags()))}; imports {time.monotonic() - start:.1f} s")
    lib = kernels.load()
    print(f"fused kernels: {'built and loaded' if lib is not None else 'NOT available'}")
    with tempfile.TemporaryDirectory() as data:
        engine = Engine.load(str(cached_checkpoint("custom_voice")), data_dir=data)
        print(f"precision: {engine.precision.describe()}")
        t = time.monotonic()
        pcm = b"".join(engine.stream("Hello there.", speaker="Ryan", max_frames=8, seed=3))
    samples = np.frombuffer(pcm, "<i2")
    peak = int(np.abs(samples).max()) if samples.size else 0
    print(f"spoke {samples.size} samples (8 frames), peak {peak}, "
          f"in {time.monotonic() - t:.1f} s; total {time.monotonic() - start:.1f} s")
    ok = samples.size == 8 * 1920 and peak > 100 and lib is not None
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
