"""The fused single-token kernels of kernels.c: compiled on this machine, loaded with ctypes.

Why C: between its four int8 products, a decoder layer step does ~40 small torch operations
(norms, rotary embedding, cache writes, attention, SiLU) whose dispatch costs more than their
arithmetic; kernels.c does them in four calls.  Measured on the 0.6B model (BENCHMARKS.md).

Why compiled here, at first use: `-march=native` picks the vector instructions of the CPU the
server runs on (AVX2 on a mini-PC, AVX-512 on a Xeon, NEON on a Pi), and no build step or
torch headers are needed at install time.  The library is cached, keyed by the source, the
compiler and the CPU.  Without a C compiler (or with QWEN3_TTS_KERNELS=0) the decode loop runs
the same arithmetic as torch operations: slower, never wrong.
"""

from __future__ import annotations

import ctypes
import hashlib
import itertools
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path

from .precision import cpu_flags

_LOGGER = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("kernels.c")
# one library: the fused layer-step kernels and the int8 products (int8_products.c)
SOURCES = (SOURCE, Path(__file__).with_name("int8_products.c"))
# -fopenmp: int8_products.c shares its rows out among threads.  libgomp is loaded once per
# process, so its threads are torch's own team (torch's CPU build runs on libgomp too).
# Without OpenMP (no libgomp to link) the same code builds single-threaded.
FLAG_SETS = (
    ["-O3", "-march=native", "-fopenmp"],
    ["-O3", "-march=native", "-fopenmp-simd"],
    ["-O3", "-fopenmp"],  # compilers that know no -march=native
    ["-O3", "-fopenmp-simd"],
)


# QWEN3_TTS_KERNELS_MARCH=haswell (or any -march value) compiles for that CPU instead
MARCH_ENV = "QWEN3_TTS_KERNELS_MARCH"


def flag_sets() -> tuple[list[str], ...]:
    march = os.environ.get(MARCH_ENV, "").strip()
    if march:
        return (["-O3", f"-march={march}", "-fopenmp"], ["-O3", f"-march={march}", "-fopenmp-simd"],
                *FLAG_SETS[2:])
    return FLAG_SETS


class Attention(ctypes.Structure):
    """kernels.c's `Attention`: what one layer's attention block needs besides the step."""

    _fields_ = [
        ("qk_norm_weight", ctypes.c_void_p),
        ("k_cache", ctypes.c_void_p),
        ("v_cache", ctypes.c_void_p),
        ("scratch", ctypes.c_void_p),
        ("heads", ctypes.c_int),
        ("kv_heads", ctypes.c_int),
        ("head_dim", ctypes.c_int),
        ("capacity", ctypes.c_int),
        ("eps", ctypes.c_float),
        ("scale", ctypes.c_float),
    ]


def _signatures(lib: ctypes.CDLL) -> ctypes.CDLL:
    p, i, f = ctypes.c_void_p, ctypes.c_int, ctypes.c_float
    lib.rms_norm.argtypes = [p, p, p, i, f, i]
    lib.add_rms_norm.argtypes = [p, p, p, p, i, f, i]
    lib.silu_mul.argtypes = [p, p, i, i]
    lib.attend.argtypes = [ctypes.POINTER(Attention), p, p, p, i, i, p]
    for fn in (lib.rms_norm, lib.add_rms_norm, lib.silu_mul, lib.attend):
        fn.restype = None
    lib.dyn32_linear.argtypes = [p, p, i, i, p, p, p, i, i]
    lib.dyn32_linear.restype = i
    lib.q4_linear.argtypes = [p, p, i, i, p, p, p, i, i]
    lib.q4_linear.restype = i
    lib.dyn32_threaded.argtypes = []
    lib.dyn32_threaded.restype = i
    lib.dyn32_path.argtypes = []
    lib.dyn32_path.restype = ctypes.c_char_p
    return lib


def _compiler() -> str | None:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return name
    return None


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "wyoming-qwen3-tts" / "kernels"


def torch_openmp() -> Path | None:
    """The OpenMP runtime torch was shipped with, if it brings its own.

    torch's aarch64 wheels bundle libgomp under a hashed name (torch.libs/libgomp-<hash>.so):
    linked against the system's libgomp, int8_products.c would run a second OpenMP runtime,
    with threads of its own spinning beside torch's.  Linked against torch's file, the
    loader finds it already loaded (by its soname) and there is one team.  The x86 wheels ship
    torch/lib/libgomp.so.1, which is also what the system's name resolves to once torch is
    loaded."""
    import importlib.util

    spec = importlib.util.find_spec("torch")
    if spec is None or spec.origin is None:
        return None
    package = Path(spec.origin).parent
    for folder in (package.parent / "torch.libs", package / "lib"):
        found = sorted(folder.glob("libgomp*.so*"))
        if found:
            return found[0]
    return None


def _build(cc: str, flags: list[str], target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        out = Path(tmp) / target.name
        runtime = torch_openmp() if "-fopenmp" in flags else None
        if runtime is None:
            subprocess.run([cc, *flags, "-fPIC", "-shared", "-o", str(out),
                            *(str(source) for source in SOURCES), "-lm"],
                           check=True, capture_output=True, timeout=120)
        else:  # compiled with OpenMP, linked against torch's runtime instead of -lgomp
            objects = []
            for source in SOURCES:
                obj = Path(tmp) / f"{source.stem}.o"
                subprocess.run([cc, *flags, "-fPIC", "-c", "-o", str(obj), str(source)],
                               check=True, capture_output=True, timeout=120)
                objects.append(str(obj))
            subprocess.run([cc, "-shared", "-o", str(out), *objects, str(runtime),
                            f"-Wl,-rpath,{runtime.parent}", "-lm"],
                           check=True, capture_output=True, timeout=120)
        os.replace(out, target)  # atomic: a concurrent server sees all of it or nothing


@cache
def load(cache_dir: Path | None = None) -> ctypes.CDLL | None:
    """The compiled kernels, or None (then the decode loop uses torch operations)."""
    if os.environ.get("QWEN3_TTS_KERNELS", "1").strip().lower() in ("0", "false", "no", "off"):
        _LOGGER.info("Fused kernels switched off (QWEN3_TTS_KERNELS)")
        return None
    cc = _compiler()
    if cc is None:
        _LOGGER.warning("No C compiler found: the decode loop runs without its fused kernels "
                        "(slower; install gcc to speed it up)")
        return None
    try:
        version = subprocess.run([cc, "--version"], capture_output=True, text=True,
                                 timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        version = ""
    # a read-only home (some containers) falls back to the temporary directory
    folders = [Path(cache_dir) if cache_dir else _cache_dir(),
               Path(tempfile.gettempdir()) / "wyoming-qwen3-tts-kernels"]
    errors = []
    for flags, folder in itertools.product(flag_sets(), folders):
        key = hashlib.sha256("\n".join([
            *(source.read_text(encoding="utf-8") for source in SOURCES), version,
            " ".join(flags), platform.machine(), str(torch_openmp()),
            " ".join(sorted(cpu_flags())),
        ]).encode()).hexdigest()[:16]
        target = folder / f"kernels-{key}.so"
        try:
            if not target.is_file():
                _LOGGER.info("Compiling the fused kernels (%s %s) into %s", cc, " ".join(flags),
                             folder)
                _build(cc, flags, target)
            lib = _signatures(ctypes.CDLL(str(target)))
            _LOGGER.debug("Fused kernels loaded from %s (int8 products: %s, %s)", target,
                          lib.dyn32_path().decode(),
                          "threaded" if lib.dyn32_threaded() else "one thread")
            return lib
        except (OSError, subprocess.SubprocessError) as err:
            detail = getattr(err, "stderr", b"") or b""
            errors.append(f"{' '.join(flags)} in {folder}: {err} "
                          f"{detail.decode(errors='replace')[-300:]}")
    _LOGGER.warning("Could not build the fused kernels, running without them: %s",
                    "; ".join(errors))
    return None
