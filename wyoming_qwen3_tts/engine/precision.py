"""Precision and threads, chosen per component and per CPU.

On CPUs without native bfloat16 instructions (most mini-PCs, AVX2-only x86, most ARM boards)
bfloat16 is emulated: single-token steps get somewhat faster (half the bytes to read), but the
prompt prefill gets ~5x slower and the vocoder's convolutions 60-90x slower.  int8 weights
(fbgemm dynamic quantization) read a quarter of float32's bytes and have fast AVX2 kernels:
a 3072x1024 matrix-vector product took 118 us against 440 us in float32 on an AVX2-only EPYC,
and 53 us against 298 us in bfloat16 on a Xeon with AMX-BF16 (AMX does not help a single
token).  So `auto` picks, for generation (talker + code predictor):

- int8 on x86-64 CPUs with AVX2 (fbgemm), with or without native bf16,
- bfloat16 on other CPUs with bf16 instructions (e.g. ARMv8.6 with BF16),
- float32 elsewhere;

and for the vocoder (compute-bound convolutions) bfloat16 only where the CPU has native bf16
(0.32 against 0.49 real-time factor on the AMX Xeon), float32 everywhere else.
"""

from __future__ import annotations

import logging
import os
import platform
from dataclasses import dataclass
from functools import cache

import torch

from ..contract import DTYPES

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class Precision:
    generation: str  # "float32" | "bfloat16" | "int8"
    vocoder: torch.dtype

    @property
    def activations(self) -> torch.dtype:
        """dtype of the talker's activations (int8 layers take float32 in and out)."""
        return torch.bfloat16 if self.generation == "bfloat16" else torch.float32

    def describe(self) -> str:
        return f"generation={self.generation}, vocoder={str(self.vocoder).removeprefix('torch.')}"


@cache
def cpu_flags() -> frozenset[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def has_native_bf16(flags: frozenset[str] | None = None) -> bool:
    flags = cpu_flags() if flags is None else flags
    return bool({"avx512_bf16", "amx_bf16", "bf16", "svebf16"} & flags)


def has_fbgemm(flags: frozenset[str] | None = None) -> bool:
    flags = cpu_flags() if flags is None else flags
    return platform.machine().lower() in ("x86_64", "amd64") and "avx2" in flags


def choose_precision(dtype: str = "auto", flags: frozenset[str] | None = None) -> Precision:
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    native_bf16 = has_native_bf16(flags)
    # an explicit float32 or int8 keeps the vocoder exact: float32 is the reference path
    vocoder = torch.bfloat16 if native_bf16 and dtype in ("auto", "bfloat16") else torch.float32
    if dtype == "auto":
        if has_fbgemm(flags):
            dtype = "int8"
        elif native_bf16:
            dtype = "bfloat16"
        else:
            dtype = "float32"
    if dtype == "int8" and "fbgemm" not in torch.backends.quantized.supported_engines:
        raise ValueError("int8 needs torch's fbgemm (x86-64) quantized engine")
    return Precision(generation=dtype, vocoder=vocoder)


def physical_cores() -> int:
    try:
        import psutil

        cores = psutil.cpu_count(logical=False)
    except Exception:  # psutil missing or unable to tell
        cores = None
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return max(1, min(c for c in (cores, available, os.cpu_count()) if c))


def set_threads(threads: int = 0, interop_threads: int = 0) -> tuple[int, int]:
    """Intra-op and inter-op threads; 0 = all physical cores (inter-op: 1)."""
    intra = threads if threads > 0 else physical_cores()
    torch.set_num_threads(intra)
    inter = interop_threads if interop_threads > 0 else 1
    try:
        torch.set_num_interop_threads(inter)
    except RuntimeError:  # can only be set once per process, before any parallel work
        inter = torch.get_num_interop_threads()
    _LOGGER.debug("Threads: intra-op %s, inter-op %s", intra, inter)
    return intra, inter
