"""Precision and threads, chosen per component and per CPU class.

`--dtype` names what the talker and the code predictor are made of; each name resolves, per
CPU class, to a quantization scheme per stack (quantize.SCHEMES), and the vocoder gets its own
dtype.  The classes and what `auto` picks, from the measurements in MEASURED below:

    class        CPUs                                   auto: talker / code predictor  vocoder
    x86-bf16     x86-64 with AVX512-BF16 or AMX         int8 fbgemm / int4-dyn32       bfloat16
                 (Zen 4/5, Sapphire Rapids and later)   (--dtype int4)
    x86-avx2     x86-64 with AVX2 (N100, most NUCs)     int8 fbgemm / int4-dyn32       float32
                                                        (--dtype int4)
    arm-dotprod  ARMv8.2+ with dotprod (Raspberry       int8-dyn32 / int4 KleidiAI     float32
                 Pi 5: Cortex-A76)                      (--dtype int4)
    arm-v8.0     ARMv8.0 (Raspberry Pi 4: Cortex-A72)   int8-dyn32 / int4-dyn32        float32
                                                        (--dtype int4)
    other        anything else                          float32                        float32

Why: on x86 fbgemm's dynamic int8 is 2.5-4x faster than torch's weight-only int8 or int4
kernels at one token (MEASURED), with or without AVX-512; its weakness, activations quantized
per token (7 bits), is covered by the first-load faithfulness check (faithfulness.py), which
moves a layer whose error is out of bounds to int8-dyn32 (activations per block of 32: an
outlier channel costs only its block) and then to weight-only int8.  fbgemm stays x86's first
choice for its prefill: several tokens at once it is 3-5x faster than int8-dyn32, whose
per-block scales cost a float conversion per 32 products (one token: int8-dyn32 is 1.1x faster
in the decode loop on a Zen 4, interleaved in one process, 0.6B; on a Zen 5 fbgemm was the
faster in the code predictor too: 49.9 against 58.8 ms per frame).  The code predictor (70 %
of the weights read per frame, 15 passes) is in 4 bits on every class with the compiled
kernels: int4-dyn32, since its x86 paths take a group of blocks per load, runs the code
predictor 1.31x faster than fbgemm's int8 on a Zen 5 (33.6 against 44.1 ms per frame) and
1.29x with the machine capped to AVX2 (31.2 against 40.4), reading 0.56 of its bytes.  On ARM
there is no fbgemm; int8-dyn32 (NEON, dotprod where there is one, four blocks a step) costs
3.0x (A76) and 2.8x (A72) fewer instructions than torch's weight-only int8, 16x fewer than
oneDNN's float32 product, and reads
a quarter of float32's bytes; KleidiAI's 4-bit product (dynamic int8 activations per row,
dotprod) 2x fewer again, but without dotprod (Cortex-A72) it runs a reference path (61 M
instructions per product).  There our own 4-bit product (int4-dyn32: ggml's Q4_0 weights,
activations per block of 32 as int8-dyn32) takes 1.4x int8-dyn32's instructions (1.89 M
against 1.32 M on an A72) for 0.56 of its bytes, and a Pi 4 is bound by its 4-6 GB/s.  The
talker, which picks the semantic codebook, stays int8 on ARM; the code predictor (70 % of the
weights read per frame) goes to 4 bits.  On a Pi 5 KleidiAI's 4-bit product stays (0.83 M
against int4-dyn32's 1.61 M on an A76).  4 bits have about 5x int8's error per product: the
talker, which picks each frame's first code, stays int8 everywhere, and the first-load check
moves a code-predictor layer out of its bound to int8-dyn32.  Without the compiled kernels
`auto` keeps x86's code predictor on fbgemm's int8 (torch's tinygemm int4 is the slower).

bfloat16 as a whole (weights and activations) helps only single-token steps on CPUs without
native bf16, while prefill gets ~5x slower and convolutions 60-90x slower: the vocoder is
bfloat16 only with native bf16 (0.32 against 0.49 real-time factor on an AMX Xeon).

CPU features are read for the architecture Python runs on (`platform.machine()`) first: under
qemu-user an aarch64 process sees the host's x86 flags in /proc/cpuinfo, so on ARM the
features come from the auxiliary vector (AT_HWCAP, what the kernel or qemu grants), and only
x86 reads /proc/cpuinfo's `flags`.  `ATEN_CPU_CAPABILITY=avx2` (or `default`) caps the x86
features as torch is capped: with FBGEMM_ENABLE_INSTRUCTIONS=AVX2, MKL_ENABLE_INSTRUCTIONS=AVX2
and ONEDNN_MAX_CPU_ISA=AVX2 (AVX2_ENV) an AVX-512 machine then runs as the x86-avx2 class
(the fused kernels too with QWEN3_TTS_KERNELS_MARCH=haswell: dev.peers.avx2_env).
"""

from __future__ import annotations

import ctypes
import dataclasses
import logging
import os
import platform
from dataclasses import dataclass, field
from functools import cache

import torch

from ..contract import DTYPES

_LOGGER = logging.getLogger(__name__)

X86_BF16, X86_AVX2, ARM_DOTPROD, ARM_V80, OTHER = (
    "x86-bf16", "x86-avx2", "arm-dotprod", "arm-v8.0", "other")
CPU_CLASSES = (X86_BF16, X86_AVX2, ARM_DOTPROD, ARM_V80, OTHER)

# what an AVX-512 machine needs to run as the x86-avx2 class (every library that can be capped)
AVX2_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "FBGEMM_ENABLE_INSTRUCTIONS": "AVX2",
            "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}

# Per-layer product time, one token, 0.6B layer (qkv 4096x1024, o 1024x2048, gate_up
# 6144x1024, down 1024x3072), float32 in and out as the decode loop sees them, 1 thread,
# medians of 9 interleaved rounds (AMD EPYC with AVX512-BF16, 2026-12-01; the AVX2 row with
# AVX2_ENV on the same machine); relative error of one product on Gaussian weights.  The ARM
# rows: guest instructions per [1x1024]x[1024x3072] product under qemu (torch 2.10,
# script/aarch64 --count-instructions, ../shared/reference/cpus-and-quantized-kernels.md;
# int8-dyn32, int4-dyn32 and the M=16 rows: torch 2.9.1 in the arm64 tree, 1 thread,
# through the Product's Python call, script/aarch64.d/count_kernels.py, 2026-12-02; int8-dyn32
# again after its NEON path went to four blocks a step, the same day).
MEASURED = {
    X86_BF16: {"us_per_layer": {"float32": 4016, "bfloat16": 3573, "int8-fbgemm": 411,
                                "int8-wo-bf16": 1492, "int8-wo-f32": 15032,
                                "int4-tinygemm-g32": 1028, "int4-tinygemm-g128": 981}},
    X86_AVX2: {"us_per_layer": {"float32": 5835, "bfloat16": 2614, "int8-fbgemm": 720,
                                "int8-wo-bf16": 2707, "int8-wo-f32": 22097,
                                "int4-tinygemm-g32": 3129, "int4-tinygemm-g128": 3082}},
    ARM_DOTPROD: {"instructions_per_product": {
        "float32 (oneDNN)": 19.96e6, "float32 (mkldnn off)": 1.88e6, "bfloat16": 68.6e6,
        "int8 qnnpack": 8.32e6, "int8-wo-f32": 3.72e6, "int8-wo-bf16": 4.16e6,
        "int8-dyn32": 1.22e6, "int8-dyn32 M=16": 17.80e6, "int8-wo-f32 M=16": 61.93e6,
        "int4-tinygemm-g32": 9.9e6, "int4-kleidiai-g32": 0.83e6, "int4-dyn32": 1.61e6,
        "int4-kleidiai per channel": 0.62e6}},
    ARM_V80: {"instructions_per_product": {"int4-kleidiai-g32 (reference path)": 61e6,
                                           "int8-dyn32": 1.32e6, "int8-wo-f32": 3.75e6,
                                           "int4-dyn32": 1.89e6, "int4-dyn32 M=16": 25.7e6,
                                           "int8-dyn32 M=16": 19.37e6}},
    # code-predictor-shaped products (the 4 of each of 5 layers, 79 MB int8: more than L3),
    # ms per pass, 2 threads, one run (AMD EPYC Zen 4, 2026-12-02)
    "x86 code predictor pass ms": {"int8-fbgemm": 2.46, "int8-dyn32": 2.12, "int4-dyn32": 1.99,
                                   "int4-tinygemm-g32": 2.84},
    # the same products in the decode loop, code predictor ms per frame, 40 frames, medians of
    # 6 interleaved rounds in one process, 2 threads (AMD EPYC Zen 5, 2026-12-02)
    "x86 code predictor ms per frame, Zen 5": {"int8-fbgemm": 49.9, "int8-dyn32": 58.8,
                                               "int4-dyn32 (one block per step)": 55.4},
    # after int4-dyn32's x86 paths went to a group of blocks per load: 60 frames, medians of
    # 7 interleaved rounds in one process, talker int8-fbgemm in both, 2 threads (AMD EPYC
    # Zen 5, 2026-12-08; the AVX2 row with dev.peers.avx2_env on the same machine)
    "x86 code predictor ms per frame, Zen 5, grouped int4": {"int8-fbgemm": 44.1,
                                                             "int4-dyn32": 33.6},
    "x86 code predictor ms per frame, Zen 5 capped to AVX2": {"int8-fbgemm": 40.4,
                                                              "int4-dyn32": 31.2},
    "error": {"int8-fbgemm": 0.0172, "int8-dyn32": 0.0095, "int8-wo": 0.0080, "int4-g32": 0.077,
              "int4-dyn32": 0.086,
              "int4-g128": 0.099,
              "int4-kleidiai-g32": 0.095, "bfloat16": 0.0028},
}

# --dtype -> (talker scheme, code predictor scheme) per class; None: not available there
_INT8 = {X86_BF16: "int8-fbgemm", X86_AVX2: "int8-fbgemm", ARM_DOTPROD: "int8-dyn32",
         ARM_V80: "int8-dyn32", OTHER: "int8-wo-f32"}
# int8 where the compiled kernels are missing (no C compiler, QWEN3_TTS_KERNELS=0)
WITHOUT_KERNELS = {X86_BF16: "int8-fbgemm", X86_AVX2: "int8-fbgemm",
                   ARM_DOTPROD: "int8-wo-f32", ARM_V80: "int8-wo-f32", OTHER: "int8-wo-f32"}
_INT8_WO = {X86_BF16: "int8-wo-bf16", X86_AVX2: "int8-wo-bf16", ARM_DOTPROD: "int8-wo-f32",
            ARM_V80: "int8-wo-f32", OTHER: "int8-wo-f32"}
_INT4 = {X86_BF16: "int4-dyn32", X86_AVX2: "int4-dyn32",
         ARM_DOTPROD: "int4-kleidiai-g32", ARM_V80: "int4-dyn32",
         OTHER: "int4-kleidiai-g32"}
# 4 bits where the compiled kernels are missing (int4-dyn32 is theirs): torch's own kernels
# (KleidiAI without dotprod is its 61 M-instruction reference path: weight-only int8 instead)
WITHOUT_KERNELS_INT4 = {X86_BF16: "int4-tinygemm-g32", X86_AVX2: "int4-tinygemm-g32",
                        ARM_DOTPROD: "int4-kleidiai-g32", ARM_V80: "int8-wo-f32",
                        OTHER: "int4-kleidiai-g32"}
# scheme of the compiled kernels -> what each class runs instead without them
_WITHOUT_KERNELS_OF = {"int8-dyn32": WITHOUT_KERNELS, "int4-dyn32": WITHOUT_KERNELS_INT4}
AUTO = {X86_BF16: "int4", X86_AVX2: "int4", ARM_DOTPROD: "int4", ARM_V80: "int4",
        OTHER: "float32"}
# what auto runs instead of int4-dyn32 without the compiled kernels: on x86 fbgemm's int8,
# faster than torch's tinygemm int4 ("x86 code predictor pass ms")
_AUTO_WITHOUT_KERNELS_OF = {**_WITHOUT_KERNELS_OF, "int4-dyn32": {
    **WITHOUT_KERNELS_INT4, X86_BF16: "int8-fbgemm", X86_AVX2: "int8-fbgemm"}}


def schemes_for(dtype: str, cpu_class: str) -> tuple[str, str]:
    """(talker scheme, code predictor scheme) of a resolved --dtype on a CPU class."""
    if dtype in ("float32", "bfloat16"):
        return dtype, dtype
    if dtype == "int8":
        return _INT8[cpu_class], _INT8[cpu_class]
    if dtype == "int8-weight-only":
        return _INT8_WO[cpu_class], _INT8_WO[cpu_class]
    if dtype == "int4":  # the code predictor in 4 bits, the talker in int8
        return _INT8[cpu_class], _INT4[cpu_class]
    if dtype == "int4-all":
        return _INT4[cpu_class], _INT4[cpu_class]
    raise ValueError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")


# -- the CPU ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cpu:
    arch: str  # "x86_64", "aarch64" or platform.machine() as it is
    features: frozenset[str] = field(default_factory=frozenset)  # x86 flags / ARM hwcaps

    @property
    def cpu_class(self) -> str:
        if self.arch == "x86_64":
            if not {"avx2", "fma"} <= self.features:
                return OTHER
            return X86_BF16 if {"avx512_bf16", "amx_bf16"} & self.features else X86_AVX2
        if self.arch == "aarch64":
            return ARM_DOTPROD if "asimddp" in self.features else ARM_V80
        return OTHER

    @property
    def native_bf16(self) -> bool:
        if self.arch == "x86_64":
            return bool({"avx512_bf16", "amx_bf16"} & self.features)
        if self.arch == "aarch64":
            return bool({"bf16", "svebf16"} & self.features)
        return False

    def describe(self) -> str:
        return f"{self.cpu_class} ({self.arch})"


def _arch(machine: str | None = None) -> str:
    machine = (machine or platform.machine()).lower()
    return {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64"}.get(machine, machine)


# AT_HWCAP / AT_HWCAP2 bits of arm64 (linux/arch/arm64/include/uapi/asm/hwcap.h)
_HWCAP = {"fp": 0, "asimd": 1, "aes": 3, "pmull": 4, "sha1": 5, "sha2": 6, "crc32": 7,
          "atomics": 8, "fphp": 9, "asimdhp": 10, "asimdrdm": 12, "asimddp": 20, "sve": 22}
_HWCAP2 = {"sve2": 1, "i8mm": 13, "bf16": 14, "svebf16": 12, "sme": 23}


def _arm_hwcaps() -> frozenset[str]:
    """ARM features from the auxiliary vector (right under qemu-user too), else cpuinfo."""
    try:
        libc = ctypes.CDLL(None)
        libc.getauxval.restype = ctypes.c_ulong
        libc.getauxval.argtypes = [ctypes.c_ulong]
        hwcap, hwcap2 = libc.getauxval(16), libc.getauxval(26)  # AT_HWCAP, AT_HWCAP2
    except (OSError, AttributeError):
        hwcap = hwcap2 = 0
    if hwcap:
        return frozenset([n for n, b in _HWCAP.items() if hwcap >> b & 1]
                         + [n for n, b in _HWCAP2.items() if hwcap2 >> b & 1])
    return _cpuinfo_line("Features")


def _cpuinfo_line(key: str) -> frozenset[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith(key):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


_AVX512_LIKE = ("avx512", "amx", "avx_vnni", "avx10")


@cache
def detect_cpu() -> Cpu:
    arch = _arch()
    if arch == "x86_64":
        flags = _cpuinfo_line("flags")
        if os.environ.get("ATEN_CPU_CAPABILITY", "").strip().lower() in ("avx2", "default"):
            flags = frozenset(f for f in flags if not f.startswith(_AVX512_LIKE))
            if os.environ["ATEN_CPU_CAPABILITY"].strip().lower() == "default":
                flags -= {"avx2"}
        return Cpu(arch, flags)
    if arch == "aarch64":
        return Cpu(arch, _arm_hwcaps())
    return Cpu(arch, frozenset())


def cpu_flags() -> frozenset[str]:
    """The features that decide this machine's class (x86 flags or ARM hwcaps)."""
    return detect_cpu().features


# -- precision -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Precision:
    generation: str  # the resolved --dtype: a name of contract.DTYPES other than "auto"
    vocoder: torch.dtype
    talker: str = ""  # quantize.SCHEMES names; "" = the same as `generation`
    predictor: str = ""
    cpu_class: str = OTHER
    auto: bool = False  # chosen by `auto` (then the faithfulness check may fall back)

    def __post_init__(self) -> None:
        if not self.talker:
            object.__setattr__(self, "talker", self.generation)
        if not self.predictor:
            object.__setattr__(self, "predictor", self.generation)

    @property
    def activations(self) -> torch.dtype:
        """dtype of the talker's activations (quantized layers take float32 in and out)."""
        return torch.bfloat16 if self.talker == "bfloat16" else torch.float32

    def describe(self) -> str:
        stacks = "" if (self.talker, self.predictor) == (self.generation,) * 2 else \
            f" (talker {self.talker}, code predictor {self.predictor})"
        return (f"generation={self.generation}{stacks}, "
                f"vocoder={str(self.vocoder).removeprefix('torch.')}, cpu={self.cpu_class}")


def resolve(dtype: str, cpu: Cpu) -> Precision:
    """`--dtype` on a CPU: the scheme of each stack and the vocoder's dtype (whether this
    torch has the kernels is choose_precision's question)."""
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    klass = cpu.cpu_class
    # an explicit float32 or int8 keeps the vocoder exact: float32 is the reference path
    vocoder = torch.bfloat16 if cpu.native_bf16 and dtype in ("auto", "bfloat16") \
        else torch.float32
    auto = dtype == "auto"
    if auto:
        dtype = AUTO[klass]
    talker, predictor = schemes_for(dtype, klass)
    return Precision(generation=dtype, vocoder=vocoder, talker=talker, predictor=predictor,
                     cpu_class=klass, auto=auto)


def choose_precision(dtype: str = "auto", cpu: Cpu | None = None) -> Precision:
    """`--dtype` on this CPU (or `cpu`); ValueError if this torch lacks a kernel it needs."""
    precision = resolve(dtype, detect_cpu() if cpu is None else cpu)
    from .quantize import unavailable

    swap = {}
    for scheme in {precision.talker, precision.predictor}:
        without = (_AUTO_WITHOUT_KERNELS_OF if precision.auto else _WITHOUT_KERNELS_OF).get(scheme)
        if without is not None and unavailable(scheme):
            swap[scheme] = without[precision.cpu_class]
            _LOGGER.info("%s products without the compiled kernels (%s): %s instead",
                         scheme, unavailable(scheme), swap[scheme])
    if swap:
        precision = dataclasses.replace(
            precision, talker=swap.get(precision.talker, precision.talker),
            predictor=swap.get(precision.predictor, precision.predictor))
    for scheme in {precision.talker, precision.predictor}:
        why = unavailable(scheme)
        if why:
            raise ValueError(f"--dtype {precision.generation} needs {scheme}, which this "
                             f"torch or CPU lacks: {why}")
    return precision


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
