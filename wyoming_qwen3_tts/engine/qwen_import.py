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
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import types

_SPEECH_VQ = "qwen_tts.core.tokenizer_25hz.vq.speech_vq"
_ITS_IMPORTS = ("torchaudio", "sox", "onnxruntime")


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


def import_qwen_tts() -> types.ModuleType:
    """Return the `qwen_tts` package, importable without its 25 Hz-only dependencies."""
    if "qwen_tts" not in sys.modules and _SPEECH_VQ not in sys.modules:
        if not all(_loads(name) for name in _ITS_IMPORTS):
            module = types.ModuleType(_SPEECH_VQ, "placeholder: see wyoming_qwen3_tts.qwen_import")
            module.__spec__ = importlib.machinery.ModuleSpec(_SPEECH_VQ, None)
            for name in ("WhisperEncoderVQ", "XVectorExtractor"):
                setattr(module, name, _placeholder_class(name))
            sys.modules[_SPEECH_VQ] = module
    return importlib.import_module("qwen_tts")
