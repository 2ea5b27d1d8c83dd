"""Import the `qwen_tts` model code without the modules only its 25 Hz tokenizer needs.

`import qwen_tts` always imports the 25 Hz speech tokenizer, and its module
`qwen_tts.core.tokenizer_25hz.vq.speech_vq` imports `torchaudio`, `sox` and `onnxruntime` at
module level.  The 12 Hz checkpoints this project serves never use that tokenizer.  PyPI's
`torchaudio` is built against one exact torch release: it does not load beside the CPU build
of torch we pin, and installing it drags in a second, multi-GB torch.  `sox` and
`onnxruntime` would be dead weight.

So, when that module cannot be imported, exactly that one module is replaced by a placeholder
whose two classes (the 25 Hz tokenizer's encoder parts) raise an ImportError saying why.
Nothing global (no fake `torchaudio`) is installed: other libraries keep seeing the truth.

Two more of its module-level imports are deferred while `qwen_tts` is imported, because they
cost resident memory in every server process and only cloning or nothing at all uses them
(measured on the 0.6B model: 104 MB less after the imports, 132 MB less once warm):
- `from librosa.filters import mel` (modeling_qwen3_tts: the speaker encoder's mel filters,
  used only when a voice is cloned) pulls in numba, llvmlite and scipy.signal.  For the time
  of the import `librosa.filters` is a module whose `mel` imports the real one on its first
  call; afterwards that stand-in is gone from `sys.modules`, so `librosa.filters` is the real
  module for everyone, the library's `librosa_mel_fn` included (same function, same result).
- transformers' generation code imports scikit-learn when it is installed (librosa requires
  it), for `roc_curve` in assisted generation, which the library and this project never use.
  For the time of the import transformers' `is_sklearn_available()` answers False; it is
  restored at once.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.machinery
import importlib.util
import sys
import types

_SPEECH_VQ = "qwen_tts.core.tokenizer_25hz.vq.speech_vq"
_ITS_IMPORTS = ("torchaudio", "sox", "onnxruntime")
_MEL = "librosa.filters"


def _loads(name: str) -> bool:
    try:
        importlib.import_module(name)
        return True
    except Exception:  # absent, or broken (torchaudio built for another torch)
        return False


def _placeholder_class(name: str) -> type:
    def __init__(self, *args, **kwargs):
        raise ImportError(
            f"{name} belongs to Qwen3-TTS's 25 Hz tokenizer, which needs torchaudio, sox and "
            "onnxruntime; wyoming-qwen3-tts serves the 12 Hz checkpoints only"
        )

    return type(name, (), {"__init__": __init__})


def _mel_on_first_use(*args, **kwargs):
    """librosa.filters.mel, imported when first called."""
    from librosa.filters import mel

    return mel(*args, **kwargs)


@contextlib.contextmanager
def _deferred_imports():
    """librosa.filters and scikit-learn are not imported while qwen_tts is (module docstring)."""
    stand_in = None
    if _MEL not in sys.modules:
        stand_in = types.ModuleType(_MEL, "stand-in while qwen_tts is imported: see "
                                          "wyoming_qwen3_tts.engine.qwen_import")
        stand_in.__spec__ = importlib.machinery.ModuleSpec(_MEL, None)
        stand_in.mel = _mel_on_first_use  # type: ignore[attr-defined]
        sys.modules[_MEL] = stand_in
    try:
        import transformers.utils.import_utils as transformers_imports
    except ImportError:  # the library's own import will say so
        transformers_imports = None
    sklearn = getattr(transformers_imports, "_sklearn_available", None)
    if sklearn is True:
        transformers_imports._sklearn_available = False  # type: ignore[union-attr]
    try:
        yield
    finally:
        if sklearn is True:
            transformers_imports._sklearn_available = True  # type: ignore[union-attr]
        if stand_in is not None and sys.modules.get(_MEL) is stand_in:
            del sys.modules[_MEL]


def import_qwen_tts() -> types.ModuleType:
    """Return the `qwen_tts` package, importable without its 25 Hz-only dependencies."""
    if "qwen_tts" not in sys.modules and _SPEECH_VQ not in sys.modules:
        if not all(_loads(name) for name in _ITS_IMPORTS):
            module = types.ModuleType(_SPEECH_VQ, "placeholder: see wyoming_qwen3_tts.qwen_import")
            module.__spec__ = importlib.machinery.ModuleSpec(_SPEECH_VQ, None)
            for name in ("WhisperEncoderVQ", "XVectorExtractor"):
                setattr(module, name, _placeholder_class(name))
            sys.modules[_SPEECH_VQ] = module
    if "qwen_tts" in sys.modules:
        return sys.modules["qwen_tts"]
    with _deferred_imports():
        return importlib.import_module("qwen_tts")
